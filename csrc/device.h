// What the process can see of CUDA. Safe to call in every build and on machines with no GPU or
// no driver: nothing here throws unless a specific device is asked for.
#pragma once
#include <cstdint>
#include <string>

#include "types.h"

namespace pcn {

bool built_with_cuda();
int cuda_device_count();            // 0 when CPU-only build, no driver or no device
std::string cuda_unavailable_reason();  // "" when at least one device works
std::string cuda_device_name(int index);  // throws DeviceError for a bad index
// Throws DeviceError (naming `who`) unless `device` can hold tensors now.
void require_device(const Device& device, const char* who);
void cuda_synchronize(int index);
// For libraries that enqueue work in the engine's order (NCCL): makes device `index` current on
// the calling thread and returns its op stream (cuda_check.h) as an integer handle.
uintptr_t cuda_current_stream(int index);

}  // namespace pcn
