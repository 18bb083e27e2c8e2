#include "controller/api/subscriptions.h"

namespace morph::controller {

// The connections on one fd follow one another: accept, messages, disconnect, and only then can the fd be
// accepted again. The monitor's events for an fd arrive in that order, and each connection's messages
// between its accept and its disconnect, but the two streams are read separately. So per fd a queue of
// connections, oldest first:
//  - a message whose tag is in the queue is that connection's;
//  - else it binds to the oldest connection accepted without a message yet;
//  - else it is a connection whose accept event is still to be read: appended, and its accept event,
//    when read, is matched to it instead of starting another;
//  - a disconnect event ends the oldest connection on the fd.
// A tag stays unique because the table holds each connection's metadata (keep) until its disconnect.
SubscriptionTable::Connection& SubscriptionTable::find(const SubscriptionPeer& peer) {
  auto& q = by_fd_[peer.fd];
  for (auto& c : q)
    if (c.tag == peer.tag) return c;
  for (auto& c : q)
    if (c.tag == nullptr) {
      c.tag = peer.tag;
      c.principal = peer.principal;
      c.keep = peer.keep;
      return c;
    }
  Connection c;
  c.tag = peer.tag;
  c.principal = peer.principal;
  c.keep = peer.keep;
  q.push_back(std::move(c));
  return q.back();
}

void SubscriptionTable::add_prefix(const std::string& p) {
  if (prefixes_[p]++ == 0) ++lengths_[p.size()];
  ++total_;
}

void SubscriptionTable::remove_prefix(const std::string& p) {
  auto it = prefixes_.find(p);
  if (it == prefixes_.end()) return;
  --total_;
  if (--it->second > 0) return;
  prefixes_.erase(it);
  if (auto l = lengths_.find(p.size()); l != lengths_.end() && --l->second == 0) lengths_.erase(l);
}

SubscriptionTable::Verdict SubscriptionTable::subscribe(const SubscriptionPeer& peer, std::string_view prefix) {
  Connection& c = find(peer);
  if (c.refused) return Verdict::dropped_already;
  auto refuse = [&](Verdict v) {
    c.refused = true;
    return v;
  };
  if (prefix.size() > limits_.max_prefix_bytes) return refuse(Verdict::too_long);
  if (c.prefixes.contains(prefix)) return Verdict::duplicate;
  if (c.prefixes.size() >= limits_.per_connection) return refuse(Verdict::too_many_for_connection);
  size_t& held = principals_[c.principal];
  if (held >= limits_.per_principal) return refuse(Verdict::too_many_for_principal);
  ++held;
  auto p = c.prefixes.emplace(prefix).first;
  add_prefix(*p);
  return Verdict::accepted;
}

bool SubscriptionTable::unsubscribe(const SubscriptionPeer& peer, std::string_view prefix) {
  Connection& c = find(peer);
  auto it = c.prefixes.find(prefix);
  if (it == c.prefixes.end()) return false;
  remove_prefix(*it);
  if (auto h = principals_.find(c.principal); h != principals_.end() && --h->second == 0) principals_.erase(h);
  c.prefixes.erase(it);
  return true;
}

void SubscriptionTable::release(Connection& c) {
  for (const auto& p : c.prefixes) remove_prefix(p);
  if (auto h = principals_.find(c.principal); h != principals_.end()) {
    h->second -= std::min(h->second, c.prefixes.size());
    if (h->second == 0) principals_.erase(h);
  }
  c.prefixes.clear();
  c.keep.reset();
}

void SubscriptionTable::accepted(int fd) {
  auto& q = by_fd_[fd];
  for (auto& c : q)
    if (!c.accept_seen) {
      c.accept_seen = true;  // its messages were read before its accept event
      return;
    }
  Connection c;
  c.accept_seen = true;
  q.push_back(std::move(c));
}

void SubscriptionTable::disconnected(int fd) {
  auto it = by_fd_.find(fd);
  if (it == by_fd_.end() || it->second.empty()) return;
  release(it->second.front());
  it->second.pop_front();
  if (it->second.empty()) by_fd_.erase(it);
}

bool SubscriptionTable::wanted(std::string_view topic) const {
  // One lookup per distinct prefix length that fits the topic: a few, whatever the number of subscriptions.
  for (const auto& [len, n] : lengths_) {
    if (len > topic.size()) break;
    if (prefixes_.contains(std::string(topic.substr(0, len)))) return true;
  }
  return false;
}

std::string SubscriptionTable::describe(Verdict v, std::string_view prefix) const {
  switch (v) {
    case Verdict::too_long:
      return "events: subscription prefix of " + std::to_string(prefix.size()) + " bytes is longer than " +
             std::to_string(limits_.max_prefix_bytes) + " (the longest topic); refused and disconnected";
    case Verdict::too_many_for_connection:
      return "events: more than " + std::to_string(limits_.per_connection) +
             " subscriptions on one connection; refused and disconnected";
    case Verdict::too_many_for_principal:
      return "events: more than " + std::to_string(limits_.per_principal) +
             " subscriptions held by one principal; refused and disconnected";
    case Verdict::accepted:
    case Verdict::duplicate:
    case Verdict::dropped_already:
      break;
  }
  return {};
}

size_t SubscriptionTable::connections() const {
  size_t n = 0;
  for (const auto& [fd, q] : by_fd_) n += q.size();
  return n;
}

size_t SubscriptionTable::held_by(const std::string& principal) const {
  auto it = principals_.find(principal);
  return it == principals_.end() ? 0 : it->second;
}

}  // namespace morph::controller
