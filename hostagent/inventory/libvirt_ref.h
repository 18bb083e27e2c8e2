#pragma once
// Owning handles of libvirt objects, shared by the agent's libvirt users (inventory, shifter, migration): a
// connection, a domain and a typed-parameter list, each released with libvirt's own call when it goes out
// of scope. Plain RAII only: no libvirt call is made here but the release.

#include <libvirt/libvirt.h>

#include <memory>

namespace morph::agent {

struct ConnClose {
  void operator()(virConnectPtr c) const { virConnectClose(c); }
};
using ConnRef = std::unique_ptr<virConnect, ConnClose>;

struct DomainFree {
  void operator()(virDomainPtr d) const { virDomainFree(d); }
};
using DomainRef = std::unique_ptr<virDomain, DomainFree>;

// A typed-parameter list libvirt fills (virDomainGet*) or that is built with virTypedParamsAdd* (`cap`).
struct TypedParams {
  virTypedParameterPtr p = nullptr;
  int n = 0;
  int cap = 0;
  TypedParams() = default;
  TypedParams(const TypedParams&) = delete;
  TypedParams& operator=(const TypedParams&) = delete;
  ~TypedParams() { virTypedParamsFree(p, n); }
};

}  // namespace morph::agent
