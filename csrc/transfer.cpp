#include "transfer.h"

#include <atomic>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <utility>

#include "allocator.h"
#include "device.h"
#include "error.h"
#ifdef PYCONVNET_WITH_CUDA
#include "cuda_check.h"
#endif

namespace pcn {

namespace {

std::atomic<bool> peer_enabled{true};

#ifdef PYCONVNET_WITH_CUDA
// The state of the transfers, guarded by one mutex: each device's marker event (re-recorded for
// every ordering point: a wait takes the record made just before it), whether each pair may copy
// peer to peer, and the pinned buffers of staged copies still in flight.
struct Pending {
  cudaEvent_t done;  // recorded after the host -> device copy that reads `buffer`
  int device;
  std::shared_ptr<void> buffer;
};

struct State {
  std::mutex mu;
  std::map<int, cudaEvent_t> marker;
  std::map<std::pair<int, int>, bool> peer;
  std::deque<Pending> pending;
  std::map<int, std::vector<cudaEvent_t>> spare;  // finished `done` events, per device
};

State& state() {
  static State& s = *new State;  // leaked: tensors may move during interpreter shutdown
  return s;
}

cudaEvent_t new_event(State& s, int device) {
  auto& pool = s.spare[device];
  if (!pool.empty()) {
    cudaEvent_t e = pool.back();
    pool.pop_back();
    return e;
  }
  cuda::DeviceGuard guard(device);
  cudaEvent_t e = nullptr;
  CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  return e;
}

// Records `device`'s marker on its op stream and returns it: "everything queued there so far".
cudaEvent_t mark(State& s, int device) {
  auto it = s.marker.find(device);
  if (it == s.marker.end()) it = s.marker.emplace(device, new_event(s, device)).first;
  cuda::DeviceGuard guard(device);
  CUDA_CHECK(cudaEventRecord(it->second, cuda::stream(device)));
  return it->second;
}

// Makes `waiter`'s op stream wait for everything queued so far on `device`'s.
void order_after(State& s, int waiter, int device) {
  cudaEvent_t e = mark(s, device);
  cuda::DeviceGuard guard(waiter);
  CUDA_CHECK(cudaStreamWaitEvent(cuda::stream(waiter), e, 0));
}

// Gives back the pinned buffers whose copies have finished (in order: a later copy may finish
// first, it is then released on a later call).
void release_finished(State& s) {
  while (!s.pending.empty()) {
    Pending& p = s.pending.front();
    const cudaError_t e = cudaEventQuery(p.done);
    if (e == cudaErrorNotReady) return;
    CUDA_CHECK(e);
    s.spare[p.device].push_back(p.done);
    s.pending.pop_front();
  }
}

// Whether a and b copy peer to peer; enables access both ways the first time a pair is asked.
bool peer_pair(State& s, int a, int b) {
  const auto key = std::make_pair(std::min(a, b), std::max(a, b));
  auto it = s.peer.find(key);
  if (it != s.peer.end()) return it->second;
  int ab = 0, ba = 0;
  CUDA_CHECK(cudaDeviceCanAccessPeer(&ab, a, b));
  CUDA_CHECK(cudaDeviceCanAccessPeer(&ba, b, a));
  const bool ok = ab && ba;
  if (ok) {
    for (auto [from, to] : {std::make_pair(a, b), std::make_pair(b, a)}) {
      cuda::DeviceGuard guard(from);
      const cudaError_t e = cudaDeviceEnablePeerAccess(to, 0);
      if (e == cudaErrorPeerAccessAlreadyEnabled) {
        cudaGetLastError();  // enabled elsewhere in this process: not an error
      } else {
        CUDA_CHECK(e);
      }
    }
  }
  s.peer.emplace(key, ok);
  return ok;
}

void cuda_transfer(const Tensor& src, Tensor& out) {
  const int from = src.device().index, to = out.device().index;
  const size_t bytes = src.nbytes();
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mu);
  release_finished(s);
  if (peer_enabled.load() && peer_pair(s, from, to)) {
    order_after(s, to, from);
    {
      cuda::DeviceGuard guard(to);
      CUDA_CHECK(cudaMemcpyPeerAsync(out.raw(), to, src.raw(), from, bytes, cuda::stream(to)));
    }
    order_after(s, from, to);
    return;
  }
  std::shared_ptr<void> host = allocate_pinned(bytes);
  {
    cuda::DeviceGuard guard(from);
    CUDA_CHECK(cudaMemcpyAsync(host.get(), src.raw(), bytes, cudaMemcpyDeviceToHost,
                               cuda::stream(from)));
  }
  order_after(s, to, from);
  cudaEvent_t done = new_event(s, to);
  cuda::DeviceGuard guard(to);
  CUDA_CHECK(cudaMemcpyAsync(out.raw(), host.get(), bytes, cudaMemcpyHostToDevice,
                             cuda::stream(to)));
  CUDA_CHECK(cudaEventRecord(done, cuda::stream(to)));
  s.pending.push_back({done, to, std::move(host)});
}
#endif

// Rows of `width` bytes, `height` of them, `spitch` / `dpitch` apart, on `device`'s op stream.
void copy_rows(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
               size_t height, Device device) {
  if (width == 0 || height == 0) return;
  if (device.is_cpu()) {
    for (size_t r = 0; r < height; ++r)
      std::memcpy(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch,
                  width);
    return;
  }
#ifdef PYCONVNET_WITH_CUDA
  cuda::DeviceGuard guard(device.index);
  CUDA_CHECK(cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, cudaMemcpyDeviceToDevice,
                               cuda::stream(device.index)));
#endif
}

// Elements per axis-1 channel: the product of the sizes after axis 1.
int64_t inner_size(const Shape& s) {
  int64_t n = 1;
  for (size_t i = 2; i < s.size(); ++i) n *= s[i];
  return n;
}

}  // namespace

Tensor transfer(const Tensor& src, Device dst) {
  PCN_REQUIRE(src.defined(), ValueError, "transfer: the source tensor is undefined");
  require_device(dst, "transfer");
  if (dst == src.device() || dst.is_cpu() || src.device().is_cpu()) return src.to(dst);
  Tensor out = Tensor::empty(src.shape(), src.dtype(), dst);
#ifdef PYCONVNET_WITH_CUDA
  if (src.nbytes() > 0) cuda_transfer(src, out);
#endif
  return out;
}

Tensor concat(const std::vector<Tensor>& parts, Device dst) {
  PCN_REQUIRE(!parts.empty(), ValueError, "concat: needs at least one part; got none");
  const Tensor& first = parts[0];
  PCN_REQUIRE(first.defined() && first.dim() >= 2, ValueError,
              "concat: parts must have at least 2 axes (N, C, ...); part 0 is ", first.repr());
  Shape shape = first.shape();
  shape[1] = 0;
  for (size_t i = 0; i < parts.size(); ++i) {
    const Tensor& p = parts[i];
    Shape want = first.shape();
    PCN_REQUIRE(p.defined() && p.dim() == first.dim(), ValueError, "concat: part ", i,
                " must have rank ", first.dim(), " as part 0; got ", p.repr());
    want[1] = p.shape()[1];
    PCN_REQUIRE(p.shape() == want && p.dtype() == first.dtype(), ValueError, "concat: part ", i,
                " must match part 0 ", first.repr(), " in dtype and every axis but 1; got ",
                p.repr());
    shape[1] += p.shape()[1];
  }
  require_device(dst, "concat");
  Tensor out = Tensor::empty(shape, first.dtype(), dst);
  const size_t esz = dtype_size(first.dtype());
  const size_t row = static_cast<size_t>(shape[1] * inner_size(shape)) * esz;
  size_t offset = 0;
  for (const Tensor& p : parts) {
    const Tensor here = transfer(p, dst);
    const size_t width = static_cast<size_t>(p.shape()[1] * inner_size(shape)) * esz;
    copy_rows(static_cast<char*>(out.raw()) + offset, row, here.raw(), width, width,
              static_cast<size_t>(shape[0]), dst);
    offset += width;
  }
  return out;
}

std::vector<Tensor> split(const Tensor& t, const std::vector<int64_t>& sizes,
                          const std::vector<Device>& devices) {
  PCN_REQUIRE(t.defined() && t.dim() >= 2, ValueError,
              "split: the tensor must have at least 2 axes (N, C, ...); got ", t.repr());
  PCN_REQUIRE(sizes.size() == devices.size() && !sizes.empty(), ValueError,
              "split: needs one device per slice; got ", sizes.size(), " sizes and ",
              devices.size(), " devices");
  int64_t total = 0;
  for (int64_t n : sizes) {
    PCN_REQUIRE(n >= 0, ValueError, "split: slice sizes must be >= 0; got ", n);
    total += n;
  }
  PCN_REQUIRE(total == t.shape()[1], ValueError, "split: the slice sizes must sum to axis 1 of ",
              t.repr(), "; they sum to ", total);
  for (const Device& d : devices) require_device(d, "split");
  const size_t esz = dtype_size(t.dtype());
  const size_t inner = static_cast<size_t>(inner_size(t.shape())) * esz;
  const size_t row = static_cast<size_t>(t.shape()[1]) * inner;
  std::vector<Tensor> out;
  size_t offset = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    Shape shape = t.shape();
    shape[1] = sizes[i];
    Tensor slice = Tensor::empty(shape, t.dtype(), t.device());
    const size_t width = static_cast<size_t>(sizes[i]) * inner;
    copy_rows(slice.raw(), width, static_cast<const char*>(t.raw()) + offset, row, width,
              static_cast<size_t>(shape[0]), t.device());
    out.push_back(transfer(slice, devices[i]));
    offset += width;
  }
  return out;
}

bool can_access_peer(int a, int b) {
  require_device(Device::cuda(a), "can_access_peer");
  require_device(Device::cuda(b), "can_access_peer");
#ifdef PYCONVNET_WITH_CUDA
  if (a == b) return false;
  int ok = 0;
  CUDA_CHECK(cudaDeviceCanAccessPeer(&ok, a, b));
  return ok != 0;
#else
  return false;
#endif
}

void set_peer_copies(bool enabled) { peer_enabled.store(enabled); }
bool peer_copies() { return peer_enabled.load(); }

}  // namespace pcn
