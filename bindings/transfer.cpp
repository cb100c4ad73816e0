#include "bindings.h"
#include "csrc/transfer.h"

namespace pcn::bindings {

namespace {
std::vector<Device> parse_devices(const std::vector<std::string>& names) {
  std::vector<Device> out;
  for (const std::string& n : names) out.push_back(Device::parse(n));
  return out;
}
}  // namespace

void bind_transfer(py::module_& m) {
  m.def("transfer", [](const Tensor& t, const std::string& device) {
          const Device d = Device::parse(device);
          py::gil_scoped_release release;
          return transfer(t, d);
        }, py::arg("t"), py::arg("device"));
  m.def("concat", [](const std::vector<Tensor>& parts, const std::string& device) {
          const Device d = Device::parse(device);
          py::gil_scoped_release release;
          return concat(parts, d);
        }, py::arg("parts"), py::arg("device"));
  m.def("split", [](const Tensor& t, const std::vector<int64_t>& sizes,
                    const std::vector<std::string>& devices) {
          const std::vector<Device> d = parse_devices(devices);
          py::gil_scoped_release release;
          return split(t, sizes, d);
        }, py::arg("t"), py::arg("sizes"), py::arg("devices"));
  m.def("cuda_can_access_peer", &can_access_peer, py::arg("a"), py::arg("b"));
  m.def("set_peer_copies", &set_peer_copies, py::arg("enabled"));
  m.def("peer_copies", &peer_copies);
}

}  // namespace pcn::bindings
