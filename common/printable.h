#pragma once
// printable(): bytes a peer chose (a ZeroMQ routing id, an address, an error text an agent sent) made safe
// for one log line. Printable ASCII stays as it is, a backslash is doubled, every other byte (newlines,
// escape sequences, NUL, UTF-8) becomes \xNN, so a peer can neither start a forged log line nor drive a
// terminal. Use it wherever a peer identity or a peer-supplied string is logged; never on text the program
// itself composed (that would hide nothing and make logs harder to read).

#include <cstddef>
#include <string>
#include <string_view>

namespace morph {

// At most `max_bytes` of the input are shown; a longer one ends with "...(N bytes)".
std::string printable(std::string_view s, size_t max_bytes = 512);

}  // namespace morph
