#include "bindings.h"

namespace pcn::bindings {
void bind_data(py::module_& m) {}
}  // namespace pcn::bindings
