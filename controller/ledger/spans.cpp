#include "controller/ledger/spans.h"

namespace morph::ledger {
namespace {

// FNV-1a, 64 bits, over each field and a separator (so "ab"+"c" and "a"+"bc" differ).
constexpr uint64_t kPrime = 0x100000001b3ULL;
uint64_t mix(uint64_t h, const std::string& s) {
  for (unsigned char c : s) h = (h ^ c) * kPrime;
  return (h ^ 0xffU) * kPrime;
}

}  // namespace

AllocationTerms allocation_terms(const market::Allocation& a) {
  uint64_t h = mix(mix(mix(0xcbf29ce484222325ULL, a.account), a.vm), a.host);
  h = (h ^ static_cast<uint64_t>(a.resource)) * kPrime;
  h = (h ^ static_cast<uint64_t>(a.tier)) * kPrime;
  return {a.quantity, a.price, a.since, a.notice_until, h};
}

}  // namespace morph::ledger
