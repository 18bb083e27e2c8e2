#pragma once
// Loopback HTTP for tests, independent of the servers' own library: a plain HTTP/1.0 request over a socket
// to 127.0.0.1 (the dashboard, /metrics and /healthz of the daemons, Prometheus' query API), the value of
// one series in a Prometheus exposition, and a free loopback port for a server a test starts.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace morph::test {

struct HttpReply {
  int status = 0;
  std::string headers;  // the status line and the headers, without the blank line
  std::string body;
  std::string whole() const { return headers + "\r\n\r\n" + body; }  // the reply as received
};

// `METHOD target` to 127.0.0.1:port (5 s receive timeout); nullopt when it cannot connect or the answer is
// not HTTP.
std::optional<HttpReply> http_request(uint16_t port, std::string_view method, const std::string& target);
inline std::optional<HttpReply> http_get(uint16_t port, const std::string& target) {
  return http_request(port, "GET", target);
}
// The port of "http://HOST:PORT" (what the dashboard prints); 0 when there is none.
uint16_t port_of(const std::string& url);
// Percent-encoding for a query string value.
std::string url_encode(std::string_view s);

// The value of the sample line "series value" ("name{labels}" as exposed) in a Prometheus text exposition.
std::optional<double> metric_value(const std::string& exposition, const std::string& series);

// A loopback TCP port that was free a moment ago (for a server that must bind, or rebind, a known port).
uint16_t free_port();

}  // namespace morph::test
