#include "bindings.h"

namespace pcn::bindings {
void bind_conv(py::module_& m) {}
}  // namespace pcn::bindings
