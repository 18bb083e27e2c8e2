#pragma once
// libvirt's last error on the calling thread as Morph's Error, for the agent's libvirt users (inventory,
// migration): the category says what the caller can do about it (not_found, conflict, invalid_argument,
// permission_denied; unavailable for connection and daemon failures). It makes no libvirt call but
// virGetLastError.

#include <string>

#include "common/error.h"

namespace morph::agent {

// "<what>: <libvirt's message>" with the category of libvirt's error code.
Error libvirt_error(const std::string& what);

}  // namespace morph::agent
