// Staging slots: how the data loader moves batches to a device without stalling the training loop.
//
// A slot holds a few buffers (a batch's images and labels): page-locked host memory that the
// loader's background thread fills, and for a CUDA device the device tensors they are copied to.
// upload() copies host -> device asynchronously on a copy stream of its own (one per device) and
// records an event when the copy is done; nothing waits for it yet, so the copy overlaps
// whatever kernels are running on the op stream (pcn::cuda::stream). acquire(), called by the
// consumer when it takes the batch, makes the op stream wait for that event (on the GPU, not the
// host) before the ops it then enqueues read the buffers: the op stream never waits for a copy
// in the middle of the step before. release() marks on the op stream that the ops reading the
// device buffers have been enqueued; the next upload into the slot waits for them. A ring of
// slots therefore pipelines: while the network trains on batch k, batch k+1 is read from disk
// into pinned memory and copied.
//
// For a CPU device a slot is plain CPU tensors; upload/release do nothing.
//
// A slot is used by one thread at a time (the loader's thread fills and uploads it, the consumer
// acquires and releases it: the loader hands it over through a queue). Its device buffers are private to it (ops never see
// them): clone() hands out a copy in a fresh tensor, ordered on the op stream.
#pragma once
#include <memory>
#include <utility>
#include <vector>

#include "tensor.h"

struct CUevent_st;  // cudaEvent_t without including the CUDA headers in CPU-only builds

namespace pcn {

class StagingSlot {
 public:
  StagingSlot(const std::vector<std::pair<Shape, DType>>& buffers, Device device);
  ~StagingSlot();
  StagingSlot(const StagingSlot&) = delete;
  StagingSlot& operator=(const StagingSlot&) = delete;

  size_t count() const { return device_.size(); }
  Device device() const { return where_; }
  // Host memory of buffer i, shape(i) of dtype(i), to be filled before upload().
  void* host(size_t i) const;
  // Keeps host(i)'s memory alive while held, even past close() (for views handed out).
  std::shared_ptr<void> host_owner(size_t i) const;
  const Shape& shape(size_t i) const;
  DType dtype(size_t i) const;
  // Buffer i on the device (the host buffer itself for a CPU device). Valid for ops enqueued
  // between acquire() and release().
  const Tensor& device_buffer(size_t i) const;

  // Blocks until the last upload() has finished reading host memory (so it may be refilled).
  void wait_uploaded();
  // Copies every buffer host -> device after the ops of the last release() (see above).
  void upload();
  // Ops enqueued on the op stream from now on run after the last upload's copies.
  void acquire();
  // The ops that read the device buffers since acquire() have been enqueued.
  void release();
  // A new tensor holding a copy of device buffer i, made on the op stream.
  Tensor clone(size_t i) const;
  // Waits for pending copies and gives the memory back; the slot is unusable afterwards.
  void close();

 private:
  void check_open(const char* what) const;
  void check_index(size_t i) const;

  Device where_;
  std::vector<Shape> shapes_;
  std::vector<DType> dtypes_;
  std::vector<std::shared_ptr<void>> host_;  // page-locked memory (CUDA devices only)
  std::vector<Tensor> device_;
  CUevent_st* copied_ = nullptr;    // the last upload's copies are done
  CUevent_st* released_ = nullptr;  // the ops reading the device buffers are done
  bool open_ = true;
};

}  // namespace pcn
