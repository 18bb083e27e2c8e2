#pragma once
// morphctl: the noun-verb command line for operators and tenants, as a library (main.cpp only calls it),
// so a test can run any command line and read what it printed and its exit code.
//
// Exit codes: 0 ok; 1 the controller refused the request (its error is printed); 2 usage (a bad flag or
// value, an unknown command, an unreadable key file); 3 the controller could not be reached.
// The commands themselves are registered at one point, nouns.def; the shared client, output and
// registration helpers are command.h.

#include <iosfwd>

namespace morph::cli {

// Parses argv and runs the chosen command, printing to out and err (help and CLI11's usage errors too).
int run_morphctl(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

}  // namespace morph::cli
