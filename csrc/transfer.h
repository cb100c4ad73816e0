// Moving tensors between devices without the host waiting: the crossings of the two-column model
// (pyconvnet/columns.py), where one column's activations or gradients reach the other device.
//
// transfer(src, dst) makes a copy of src on dst, asynchronously:
//   1. the copy is ordered after the work queued so far on the source device's op stream (an
//      event recorded there, waited for by the stream that copies), so it reads src complete;
//   2. peer copy: when the two devices can access each other's memory (cudaDeviceCanAccessPeer;
//      access is enabled once per pair) and peer copies are not switched off, one
//      cudaMemcpyPeerAsync on the destination's op stream; the source's op stream then waits for
//      it (an event), so a block that src frees and the source's allocator hands out again is not
//      overwritten while the copy still reads it;
//      staged copy: otherwise device -> pinned host memory on the source's op stream, then
//      host -> device on the destination's op stream after an event; the pinned buffer is kept
//      until an event says the second copy is done, and returned to its cache on a later call;
//   3. the destination's later ops are queued on the same stream after the copy, so they see it.
// Neither the host nor any stream waits for more than the copy needs. Between the CPU and a CUDA
// device, and within one device, it is Tensor::to (a CPU copy waits for the data).
//
// concat and split cut and join along axis 1 (channels, or features) with 2-D copies
// (cudaMemcpy2DAsync on the device's op stream; memcpy per row on the CPU): a tensor (N, C, ...)
// is N rows of C * (the trailing sizes) elements.
#pragma once
#include <vector>

#include "tensor.h"

namespace pcn {

Tensor transfer(const Tensor& src, Device dst);

// The parts (N, C_i, rest...) with one dtype, equal N and equal trailing sizes, joined along axis
// 1 into one (N, sum C_i, rest...) tensor on `dst`; parts on other devices are transferred.
Tensor concat(const std::vector<Tensor>& parts, Device dst);

// The axis-1 slices of t (N, C, rest...) of sizes[i] channels (summing to C), slice i on
// devices[i]. A slice is a new tensor even when it is all of t.
std::vector<Tensor> split(const Tensor& t, const std::vector<int64_t>& sizes,
                          const std::vector<Device>& devices);

// Whether CUDA devices a and b can copy directly between each other (false in a CPU-only build
// and for a == b).
bool can_access_peer(int a, int b);
// Peer copies are used where the devices allow them (the default); set_peer_copies(false) makes
// every cross-device transfer take the staged path (to test it, or to compare the two).
void set_peer_copies(bool enabled);
bool peer_copies();

}  // namespace pcn
