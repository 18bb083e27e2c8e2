#include "hostagent/inventory/libvirt_error.h"

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

namespace morph::agent {

Error libvirt_error(const std::string& what) {
  virErrorPtr e = virGetLastError();
  std::string msg = what + ": " + (e != nullptr && e->message != nullptr ? e->message : "unknown libvirt error");
  Errc code = Errc::unavailable;  // connection and daemon failures
  if (e != nullptr) {
    switch (e->code) {
      case VIR_ERR_NO_DOMAIN:
        code = Errc::not_found;
        break;
      case VIR_ERR_OPERATION_INVALID:  // e.g. the domain does not run
      case VIR_ERR_OPERATION_ABORTED:
        code = Errc::conflict;
        break;
      case VIR_ERR_INVALID_ARG:
      case VIR_ERR_ARGUMENT_UNSUPPORTED:
      case VIR_ERR_CONFIG_UNSUPPORTED:
      case VIR_ERR_MIGRATE_UNSAFE:
        code = Errc::invalid_argument;
        break;
      case VIR_ERR_AUTH_FAILED:
      case VIR_ERR_OPERATION_DENIED:
      case VIR_ERR_ACCESS_DENIED:
        code = Errc::permission_denied;
        break;
      default:
        break;
    }
  }
  return Error(code, msg);
}

}  // namespace morph::agent
