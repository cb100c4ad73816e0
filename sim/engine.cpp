// The simulator's execution engine. A launch's blocks are shared out to a pool of worker
// threads (PYCONVNET_SIM_THREADS, default: the machine's cores). A worker runs one block at a
// time: each CUDA thread of the block is a fiber with its own stack, switched by the
// hand-written x86-64 routine below. A fiber runs until it reaches a scheduling point
// (__syncthreads*, __syncwarp, a shuffle or vote) or exits; the worker then runs the next one,
// in the order PYCONVNET_SIM_SCHEDULE asks for, and releases a scheduling point once every
// thread it names has arrived. Checks:
//   synccheck: a barrier that a live thread of the block does not reach (it exited, or waits
//              at another barrier or warp operation); a warp operation whose mask names a lane
//              that exited, does not exist, or waits elsewhere; a shuffle that reads a lane
//              outside its mask; a bad shuffle width.
//   memcheck:  a fault (the guard pages around every allocation, freed memory, a fiber's stack
//              guard, the end of the launch's dynamic shared memory, another device's memory
//              without peer access) is caught by a signal handler on the worker's own signal stack and
//              reported with what the runtime knows about the address.
// In the ThreadSanitizer build (PCN_SIM_TSAN, sim/tsan_main.cpp) every CUDA thread is also a
// TSan fiber, switched without synchronisation; the only happens-before edges between the
// threads of a block are the ones CUDA defines: a barrier releases every arriving thread's
// clock and each departing thread acquires them (per block for __syncthreads*, per lane for a
// warp operation), so shared-memory accesses with no barrier between them are reported.
#include <signal.h>
#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "sim.h"

#ifdef PCN_SIM_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#if !defined(__x86_64__)
#error "the pyconvnet simulator's fiber switch is written for x86-64"
#endif

__thread pcn_sim::ThreadState* pcn_sim_thread = nullptr;

// pcn_sim_switch(save, next): saves the callee-saved registers on the current stack, stores
// the stack pointer in *save, and continues the context whose stack pointer is `next`.
// A new fiber's stack holds six register slots (r12 = its Fiber*, r13 = its entry function)
// under the address of pcn_sim_fiber_start, which calls entry(fiber) and never returns.
extern "C" void pcn_sim_switch(void** save, void* next);
extern "C" void pcn_sim_fiber_start();
asm(R"(
  .text
  .globl pcn_sim_switch
  .hidden pcn_sim_switch
  .type pcn_sim_switch, @function
pcn_sim_switch:
  pushq %rbp
  pushq %rbx
  pushq %r12
  pushq %r13
  pushq %r14
  pushq %r15
  movq %rsp, (%rdi)
  movq %rsi, %rsp
  popq %r15
  popq %r14
  popq %r13
  popq %r12
  popq %rbx
  popq %rbp
  ret
  .size pcn_sim_switch, .-pcn_sim_switch

  .globl pcn_sim_fiber_start
  .hidden pcn_sim_fiber_start
  .type pcn_sim_fiber_start, @function
pcn_sim_fiber_start:
  movq %r12, %rdi
  callq *%r13
  ud2
  .size pcn_sim_fiber_start, .-pcn_sim_fiber_start
)");

namespace pcn_sim {
namespace {

// Happens-before annotations for ThreadSanitizer; no-ops in the ordinary build. Fibers switch
// with no_sync: the engine states every edge itself.
namespace hb {
#ifdef PCN_SIM_TSAN
constexpr bool kTsan = true;
inline void* current_fiber() { return __tsan_get_current_fiber(); }
inline void* create_fiber() { return __tsan_create_fiber(0); }
inline void switch_to(void* fiber) { __tsan_switch_to_fiber(fiber, __tsan_switch_to_fiber_no_sync); }
inline void release(void* sync) { __tsan_release(sync); }
inline void acquire(void* sync) { __tsan_acquire(sync); }
inline void name_fiber(void* fiber, const std::string& name) {
  __tsan_set_fiber_name(fiber, name.c_str());
}
#else
constexpr bool kTsan = false;
inline void* current_fiber() { return nullptr; }
inline void* create_fiber() { return nullptr; }
inline void switch_to(void*) {}
inline void release(void*) {}
inline void acquire(void*) {}
inline void name_fiber(void*, const std::string&) {}
#endif
}  // namespace hb

constexpr size_t kPage = 4096;
// Per CUDA thread, with a guard page below; ThreadSanitizer's reports run on it too.
constexpr size_t kStackBytes = hb::kTsan ? 512 << 10 : 64 << 10;
constexpr size_t kMaxDynamicShared = 227 << 10;
// The dynamic shared memory buffer of a worker, whole pages, and an inaccessible page after it.
constexpr size_t kDynamicSharedMap = (kMaxDynamicShared + kPage - 1) / kPage * kPage + kPage;
constexpr size_t kSignalStackBytes = 64 << 10;

enum class State : uint8_t { kNew, kRunnable, kBarrier, kWarp, kExited, kFaulted };

}  // namespace

struct Fiber {
  ThreadState ts;
  void* sp = nullptr;
  int stack = -1;
  int index = 0;  // linear thread index in the block
  State state = State::kNew;
  // The scheduling point it waits at, and its operands.
  Sync kind = Sync::kBlock;
  const char* file = nullptr;
  int line = 0;
  unsigned mask = 0;
  uint64_t value = 0;
  int arg = 0, width = 32;
  uint64_t result = 0;
  const void* blob = nullptr;  // warp_gather's value, `arg` bytes
  // ThreadSanitizer sync objects: what the thread released at its last two warp operations
  // (one completes before the thread can reach the one after next), the slot of the one it
  // waits at, each lane's slot once the operation completed, and the barrier slot to acquire.
  char warp_sync[2] = {};
  unsigned warp_ops = 0;
  int warp_slot = 0;
  unsigned lane_slots = 0;
  int barrier_slot = 0;
};

namespace {

const char* sync_name(Sync k) {
  switch (k) {
    case Sync::kBlock: return "__syncthreads";
    case Sync::kBlockCount: return "__syncthreads_count";
    case Sync::kBlockAnd: return "__syncthreads_and";
    case Sync::kBlockOr: return "__syncthreads_or";
    case Sync::kWarp: return "__syncwarp";
    case Sync::kShflIdx: return "__shfl_sync";
    case Sync::kShflUp: return "__shfl_up_sync";
    case Sync::kShflDown: return "__shfl_down_sync";
    case Sync::kShflXor: return "__shfl_xor_sync";
    case Sync::kBallot: return "__ballot_sync";
    case Sync::kAny: return "__any_sync";
    case Sync::kAll: return "__all_sync";
    case Sync::kMma: return "mma.sync";
  }
  return "?";
}

// ----------------------------------------------------------------------------------- schedule
enum class Order { kForward, kReverse, kRandom };
struct Schedule {
  Order order = Order::kForward;
  uint64_t seed = 0;
  std::string name = "forward";
};
const Schedule& schedule() {
  static const Schedule s = [] {
    Schedule r;
    const char* v = std::getenv("PYCONVNET_SIM_SCHEDULE");
    const std::string text = v ? v : "";
    if (text.empty() || text == "forward") return r;
    if (text == "reverse") {
      r.order = Order::kReverse;
    } else if (text.rfind("random", 0) == 0) {
      r.order = Order::kRandom;
      if (text.size() > 7 && text[6] == ':') r.seed = std::strtoull(text.c_str() + 7, nullptr, 10);
    } else {
      return r;  // an unknown value: the default order (schedule_name() shows which ran)
    }
    r.name = text;
    return r;
  }();
  return s;
}

uint64_t splitmix(uint64_t& x) {
  uint64_t z = (x += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

std::string dims(uint3 v) { return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," +
                                   std::to_string(v.z) + ")"; }
std::string hex(uint64_t v) {
  std::ostringstream os;
  os << "0x" << std::hex << v;
  return os.str();
}

// "__syncthreads at file:line": the scheduling point a fiber waits at.
std::string site(const Fiber& f) {
  return std::string(sync_name(f.kind)) + " at " + f.file + ":" + std::to_string(f.line);
}
// True when two fibers wait at the same warp operation with the same mask.
bool same_warp_op(const Fiber& a, const Fiber& b) {
  return a.state == State::kWarp && b.state == State::kWarp && a.kind == b.kind &&
         a.line == b.line && std::strcmp(a.file, b.file) == 0 && a.mask == b.mask;
}

// ------------------------------------------------------------------------------------- worker
struct Worker {
  void* sched_sp = nullptr;
  std::vector<Fiber> fibers;
  std::vector<char*> stacks;  // usable bottom of each stack (a guard page lies below)
  std::vector<int> free_stacks;
  std::vector<int> order;
  std::vector<char> gathered;  // warp_gather's results: 32 * kMaxGatherBytes per warp
  Fiber* current = nullptr;
  const Kernel* kernel = nullptr;
  // The launch's dynamic shared memory ends where the buffer does, at an inaccessible page.
  char* dynamic_shared = nullptr;
  char* dynamic_shared_end = nullptr;
  // ThreadSanitizer: the worker's own context, one fiber per thread slot (kept for the life
  // of the worker), the block barriers' sync objects (two: a thread may reach the next barrier
  // before another has left this one), a block's start, and its threads' exits.
  void* tsan_self = nullptr;
  std::vector<void*> tsan_fibers;
  char barrier_sync[2] = {};
  unsigned barriers = 0;
  char block_start = 0, thread_exit = 0;
  // Set by the fault handler.
  uintptr_t fault_address = 0;
  bool fault_write = false;
  bool fault_general = false;  // a general-protection fault: no address is known
  bool fault_key = false;      // a protection-key fault: another device's memory
  // The block's first failed check.
  std::string error;
  cudaError_t error_code = cudaSuccess;

  Worker() {
    void* m = mmap(nullptr, kDynamicSharedMap, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m != MAP_FAILED) {
      dynamic_shared_end = static_cast<char*>(m) + kDynamicSharedMap - kPage;
      mprotect(dynamic_shared_end, kPage, PROT_NONE);
    }
  }
  int take_stack();
  void run_block(uint3 block);
  void resume(Fiber& f);
  bool resolve_warps();
  void fail(cudaError_t code, const Fiber& f, const std::string& what);
  std::string thread_name(const Fiber& f) const {
    return "kernel " + kernel->name + " block " + dims(f.ts.block_idx) + " thread " +
           dims(f.ts.thread_idx);
  }
};

__thread Worker* tls_worker = nullptr;

// Back to the worker's scheduler from fiber `f`.
void yield_to_scheduler(Fiber* f) {
  hb::switch_to(tls_worker->tsan_self);
  pcn_sim_switch(&f->sp, tls_worker->sched_sp);
}

void fiber_main(Fiber* f) {
  hb::acquire(&tls_worker->block_start);
  tls_worker->kernel->body();
  hb::release(&tls_worker->thread_exit);
  f->state = State::kExited;
  yield_to_scheduler(f);
  __builtin_unreachable();
}

int Worker::take_stack() {
  if (!free_stacks.empty()) {
    const int s = free_stacks.back();
    free_stacks.pop_back();
    return s;
  }
  void* m = mmap(nullptr, kStackBytes + kPage, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (m == MAP_FAILED) return -1;
  mprotect(m, kPage, PROT_NONE);
  stacks.push_back(static_cast<char*>(m) + kPage);
  return static_cast<int>(stacks.size()) - 1;
}

void Worker::fail(cudaError_t code, const Fiber& f, const std::string& what) {
  if (!error.empty()) return;
  error_code = code;
  error = what + " (" + thread_name(f) + ")";
}

void Worker::resume(Fiber& f) {
  if (f.state == State::kNew) {
    // Under ThreadSanitizer each thread slot keeps its own stack: a stack passed from one
    // thread to the next within a block would look like a race to TSan.
    f.stack = hb::kTsan ? f.index : take_stack();
    if (hb::kTsan) {
      while (static_cast<int>(stacks.size()) <= f.index && take_stack() >= 0) {
      }
      if (static_cast<int>(stacks.size()) <= f.index) f.stack = -1;
      if (tsan_fibers.size() <= static_cast<size_t>(f.index)) tsan_fibers.resize(f.index + 1);
      if (tsan_fibers[f.index] == nullptr) tsan_fibers[f.index] = hb::create_fiber();
      hb::name_fiber(tsan_fibers[f.index], "block " + dims(f.ts.block_idx) + " thread " + dims(f.ts.thread_idx));
    }
    if (f.stack < 0) {
      fail(cudaErrorLaunchOutOfResources, f, "simulator: no memory for a thread's stack");
      return;
    }
    auto* top = reinterpret_cast<uintptr_t*>(stacks[f.stack] + kStackBytes);
    // pcn_sim_fiber_start begins with rsp = top (16-byte aligned): its call then enters
    // fiber_main with rsp = 8 mod 16, as the ABI requires.
    *--top = reinterpret_cast<uintptr_t>(&pcn_sim_fiber_start);
    *--top = 0;                                             // rbp
    *--top = 0;                                             // rbx
    *--top = reinterpret_cast<uintptr_t>(&f);               // r12
    *--top = reinterpret_cast<uintptr_t>(&fiber_main);      // r13
    *--top = 0;                                             // r14
    *--top = 0;                                             // r15
    f.sp = top;
  }
  f.state = State::kRunnable;
  current = &f;
  pcn_sim_thread = &f.ts;
  if (hb::kTsan) hb::switch_to(tsan_fibers[f.index]);
  pcn_sim_switch(&sched_sp, f.sp);
  current = nullptr;
  pcn_sim_thread = nullptr;
  if (f.state == State::kExited) {
    if (!hb::kTsan) free_stacks.push_back(f.stack);
    f.stack = -1;
  } else if (f.state == State::kFaulted) {
    const bool stack_guard = std::any_of(stacks.begin(), stacks.end(), [&](char* s) {
      return fault_address >= reinterpret_cast<uintptr_t>(s) - kPage &&
             fault_address < reinterpret_cast<uintptr_t>(s);
    });
    const auto shared_end = reinterpret_cast<uintptr_t>(dynamic_shared_end);
    const std::string access = std::string("memcheck: invalid ") +
                               (fault_write ? "write" : "read") + " at " + hex(fault_address) + ": ";
    std::string what;
    if (fault_general) {
      what = "memcheck: general-protection fault (a misaligned vector access or a non-canonical "
             "address)";
    } else if (stack_guard) {
      what = "memcheck: stack overflow (a thread used more than " +
             std::to_string(kStackBytes >> 10) + " KiB of stack)";
    } else if (fault_address >= shared_end && fault_address < shared_end + kPage) {
      what = access + std::to_string(fault_address - reinterpret_cast<uintptr_t>(dynamic_shared) -
                                     kernel->smem) +
             " bytes past the end of the launch's " + std::to_string(kernel->smem) +
             " bytes of dynamic shared memory";
    } else if (fault_key) {
      const int other = allocation_device(fault_address);
      what = access + describe_address(fault_address) + ", from a kernel on cuda:" +
             std::to_string(kernel->device) + " without peer access to cuda:" +
             std::to_string(other) + " (cudaDeviceEnablePeerAccess)";
    } else {
      what = access + describe_address(fault_address);
    }
    fail(cudaErrorIllegalAddress, f, what);
  }
}

// Releases every warp operation whose named lanes have all arrived; reports the first mask
// that names an exited or missing lane. True when some fiber became runnable.
bool Worker::resolve_warps() {
  bool progress = false;
  const int n = static_cast<int>(fibers.size());
  for (int base = 0; base < n && error.empty(); base += 32) {
    const int lanes = std::min(32, n - base);
    for (int l = 0; l < lanes && error.empty(); ++l) {
      Fiber& f = fibers[base + l];
      if (f.state != State::kWarp) continue;
      const std::string op = site(f) + " with mask " + hex(f.mask);
      if (!((f.mask >> l) & 1u)) {
        fail(cudaErrorLaunchFailure, f, "synccheck: " + op + " does not name the calling lane " +
                                            std::to_string(l));
        return progress;
      }
      bool ready = true;
      for (int j = 0; j < 32; ++j) {
        if (!((f.mask >> j) & 1u)) continue;
        if (j >= lanes) {
          fail(cudaErrorLaunchFailure, f, "synccheck: " + op + " names lane " +
                                              std::to_string(j) + ", which this block does not have");
          return progress;
        }
        const Fiber& g = fibers[base + j];
        if (g.state == State::kExited) {
          fail(cudaErrorLaunchFailure, f, "synccheck: " + op + " names lane " + std::to_string(j) +
                                              " (thread " + dims(g.ts.thread_idx) +
                                              "), which has exited");
          return progress;
        }
        if (!same_warp_op(f, g)) ready = false;
      }
      if (!ready) continue;
      // Every named lane is here: compute each lane's result.
      const int width = f.width;
      if (width < 1 || width > 32 || (width & (width - 1)) != 0) {
        fail(cudaErrorLaunchFailure, f, "synccheck: " + op + ": width " + std::to_string(width) +
                                            " is not a power of 2 in [1, 32]");
        return progress;
      }
      if (f.kind == Sync::kMma) {
        // Every lane's value side by side in the warp's slot; each lane reads them on resuming,
        // before its next scheduling point, and none can reach the next gather's resolution
        // before all have.
        const size_t bytes = static_cast<size_t>(f.arg);
        char* slot = gathered.data() + static_cast<size_t>(base / 32) * 32 * kMaxGatherBytes;
        for (int j = 0; j < 32; ++j) {
          if (!((f.mask >> j) & 1u)) continue;
          const Fiber& g = fibers[base + j];
          if (static_cast<size_t>(g.arg) != bytes) {
            fail(cudaErrorLaunchFailure, g, "synccheck: " + op + ": lane " + std::to_string(j) +
                                                " exchanges " + std::to_string(g.arg) +
                                                " bytes, lane " + std::to_string(l) + " " +
                                                std::to_string(bytes));
            return progress;
          }
          std::memcpy(slot + j * bytes, g.blob, bytes);
        }
        for (int j = 0; j < 32; ++j)
          if ((f.mask >> j) & 1u) fibers[base + j].result = reinterpret_cast<uintptr_t>(slot);
      }
      uint64_t ballot = 0;
      for (int j = 0; j < 32; ++j)
        if ((f.mask >> j) & 1u) ballot |= (fibers[base + j].value != 0) << j;
      for (int j = 0; j < 32 && f.kind != Sync::kMma; ++j) {
        if (!((f.mask >> j) & 1u)) continue;
        Fiber& g = fibers[base + j];
        const int seg = j & ~(width - 1), pos = j & (width - 1);
        int src = j;
        switch (f.kind) {
          case Sync::kShflIdx: src = seg + (g.arg & (width - 1)); break;
          case Sync::kShflUp: src = pos - g.arg >= 0 ? j - g.arg : j; break;
          case Sync::kShflDown: src = pos + g.arg < width ? j + g.arg : j; break;
          case Sync::kShflXor: {
            const int s = j ^ g.arg;
            src = s >= seg + width || s < 0 || s >= 32 ? j : s;
            break;
          }
          default: break;
        }
        switch (f.kind) {
          case Sync::kBallot: g.result = ballot; break;
          case Sync::kAny: g.result = ballot != 0; break;
          case Sync::kAll: g.result = ballot == (f.mask & 0xffffffffull); break;
          case Sync::kWarp: g.result = 0; break;
          default:
            if (!((f.mask >> src) & 1u)) {
              fail(cudaErrorLaunchFailure, g, "synccheck: " + op + ": lane " + std::to_string(j) +
                                                  " reads lane " + std::to_string(src) +
                                                  ", which is not in the mask");
              return progress;
            }
            g.result = fibers[base + src].value;
        }
      }
      unsigned slots = 0;
      for (int j = 0; j < 32; ++j)
        if ((f.mask >> j) & 1u) slots |= static_cast<unsigned>(fibers[base + j].warp_slot) << j;
      for (int j = 0; j < 32; ++j) {
        if (!((f.mask >> j) & 1u)) continue;
        fibers[base + j].lane_slots = slots;
        fibers[base + j].state = State::kRunnable;
      }
      progress = true;
    }
  }
  return progress;
}

void Worker::run_block(uint3 block) {
  const Kernel& k = *kernel;
  const int bx = static_cast<int>(k.block.x), by = static_cast<int>(k.block.y);
  const int n = static_cast<int>(k.block.x * k.block.y * k.block.z);
  fibers.resize(static_cast<size_t>(n));
  order.resize(static_cast<size_t>(n));
  gathered.resize(static_cast<size_t>((n + 31) / 32) * 32 * kMaxGatherBytes);
  for (int i = 0; i < n; ++i) {
    Fiber& f = fibers[i];
    f = Fiber();
    f.index = i;
    f.ts.thread_idx = uint3{static_cast<unsigned>(i % bx), static_cast<unsigned>(i / bx % by),
                            static_cast<unsigned>(i / (bx * by))};
    f.ts.block_idx = block;
    f.ts.block_dim = k.block;
    f.ts.grid_dim = k.grid;
    f.ts.fiber = &f;
  }
  if (dynamic_shared_end == nullptr) {
    error_code = cudaErrorLaunchOutOfResources;
    error = "simulator: no memory for the dynamic shared memory of kernel " + k.name;
    return;
  }
  // Rounded up to 16 bytes, as a GPU aligns it: past that the guard page faults.
  dynamic_shared = dynamic_shared_end - (k.smem + 15) / 16 * 16;
  if (k.smem) std::memset(dynamic_shared, 0xFF, k.smem);  // initcheck: NaN, as never written
  set_thread_access(k.devices);
  // Everything before this block on this worker (earlier blocks included) happens before it.
  hb::acquire(&thread_exit);
  hb::release(&block_start);
  const Schedule& sched = schedule();
  uint64_t rng = sched.seed ^ (0x51ED2701ull * (block.x + 1)) ^
                 (static_cast<uint64_t>(block.y) << 32) ^ (static_cast<uint64_t>(block.z) << 48);
  for (int round = 0;; ++round) {
    for (int i = 0; i < n; ++i) order[i] = sched.order == Order::kReverse ? n - 1 - i : i;
    if (sched.order == Order::kRandom)
      for (int i = n - 1; i > 0; --i) std::swap(order[i], order[splitmix(rng) % (i + 1)]);
    for (int i : order) {
      Fiber& f = fibers[i];
      if (f.state == State::kNew || f.state == State::kRunnable) resume(f);
      if (!error.empty()) return;
    }
    if (resolve_warps()) continue;
    if (!error.empty()) return;
    const Fiber* first_barrier = nullptr;
    const Fiber* first_warp = nullptr;
    const Fiber* exited = nullptr;
    for (const Fiber& f : fibers) {
      if (f.state == State::kBarrier && !first_barrier) first_barrier = &f;
      if (f.state == State::kWarp && !first_warp) first_warp = &f;
      if (f.state == State::kExited && !exited) exited = &f;
    }
    if (!first_barrier && !first_warp) {  // every thread finished
      hb::acquire(&thread_exit);
      return;
    }
    if (first_warp) {
      // A warp operation that can never complete: find a named lane that waits elsewhere.
      const Fiber& f = *first_warp;
      const int base = f.index & ~31;
      std::string why;
      for (int j = 0; j < 32 && why.empty(); ++j) {
        if (!((f.mask >> j) & 1u)) continue;
        const Fiber& g = fibers[base + j];
        if (same_warp_op(f, g)) continue;
        why = "lane " + std::to_string(j) + " (thread " + dims(g.ts.thread_idx) + ") waits at " +
              site(g) + (g.state == State::kWarp ? " with mask " + hex(g.mask) : "");
      }
      fail(cudaErrorLaunchFailure, f, "synccheck: " + site(f) + " with mask " + hex(f.mask) +
                                          " never completes: " + why);
      return;
    }
    // Every live thread is at a block barrier: they must all be at the same one, and none may
    // have exited.
    const Fiber& b = *first_barrier;
    const std::string here = site(b);
    if (exited) {
      fail(cudaErrorLaunchFailure, b, "synccheck: " + here + " is not reached by thread " +
                                          dims(exited->ts.thread_idx) + ", which exited");
      return;
    }
    int count = 0;
    for (const Fiber& f : fibers) {
      if (f.kind != b.kind || f.line != b.line || std::strcmp(f.file, b.file) != 0) {
        fail(cudaErrorLaunchFailure, b, "synccheck: divergent barriers: " + here +
                                            " while thread " + dims(f.ts.thread_idx) +
                                            " waits at " + site(f));
        return;
      }
      count += static_cast<int>(f.value);
    }
    const uint64_t result = b.kind == Sync::kBlockCount ? count
                            : b.kind == Sync::kBlockAnd ? count == n
                            : b.kind == Sync::kBlockOr  ? count > 0
                                                        : 0;
    for (Fiber& f : fibers) {
      f.result = result;
      f.state = State::kRunnable;
    }
    ++barriers;
  }
}

// --------------------------------------------------------------------------------------- pool
struct Job {
  const Kernel* kernel = nullptr;
  long long total = 0;
  std::atomic<long long> next{0};
  std::atomic<long long> done{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  std::condition_variable finished;
  std::string error;
  cudaError_t code = cudaSuccess;
};

struct sigaction previous_segv, previous_bus;

void on_fault(int sig, siginfo_t* info, void* context) {
  Worker* w = tls_worker;
  if (w != nullptr && w->current != nullptr) {
    w->fault_address = reinterpret_cast<uintptr_t>(info->si_addr);
    const auto* uc = static_cast<const ucontext_t*>(context);
    w->fault_write = (uc->uc_mcontext.gregs[REG_ERR] & 2) != 0;
    w->fault_general = info->si_code == SI_KERNEL;
    w->fault_key = info->si_code == SEGV_PKUERR;
    Fiber* f = w->current;
    f->state = State::kFaulted;
    yield_to_scheduler(f);  // the fiber is abandoned
  }
  // Not a simulated thread: hand the fault to whoever handled it before.
  sigaction(sig, sig == SIGSEGV ? &previous_segv : &previous_bus, nullptr);
}

class Pool {
 public:
  Pool() {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | SA_NODEFER;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &previous_segv);
    sigaction(SIGBUS, &sa, &previous_bus);
    int n = static_cast<int>(std::thread::hardware_concurrency());
    if (const char* v = std::getenv("PYCONVNET_SIM_THREADS")) n = std::atoi(v);
    n = std::max(1, std::min(n, 256));
    for (int i = 0; i < n; ++i) std::thread([this] { work(); }).detach();
  }

  cudaError_t run(const Kernel& k, std::string* message) {
    Job job;
    job.kernel = &k;
    job.total = static_cast<long long>(k.grid.x) * k.grid.y * k.grid.z;
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(&job);
    }
    wake_.notify_all();
    std::unique_lock<std::mutex> lock(job.mu);
    job.finished.wait(lock, [&] { return job.done.load() == job.total; });
    lock.unlock();
    hb::acquire(&job.done);  // every block happens before the launch's completion
    {
      std::lock_guard<std::mutex> queue_lock(mu_);  // it may still be queued, fully claimed
      queue_.erase(std::remove(queue_.begin(), queue_.end(), &job), queue_.end());
    }
    if (job.code != cudaSuccess) *message = job.error;
    return job.code;
  }

 private:
  void work() {
    stack_t ss;
    ss.ss_sp = std::malloc(kSignalStackBytes);
    ss.ss_size = kSignalStackBytes;
    ss.ss_flags = 0;
    sigaltstack(&ss, nullptr);
    Worker* w = new Worker;  // per thread, for the life of the process
    w->tsan_self = hb::current_fiber();
    tls_worker = w;
    for (;;) {
      Job* job = nullptr;
      long long b = 0;
      {
        std::unique_lock<std::mutex> lock(mu_);
        for (;;) {
          while (!queue_.empty() && queue_.front()->next.load() >= queue_.front()->total)
            queue_.pop_front();
          if (!queue_.empty()) {
            job = queue_.front();
            b = job->next.fetch_add(1);
            if (b < job->total) break;
            continue;
          }
          wake_.wait(lock);
        }
      }
      if (!job->failed.load()) {
        const Kernel& k = *job->kernel;
        const long long gx = k.grid.x, gy = k.grid.y;
        w->kernel = &k;
        w->error.clear();
        w->run_block(uint3{static_cast<unsigned>(b % gx), static_cast<unsigned>(b / gx % gy),
                           static_cast<unsigned>(b / (gx * gy))});
        if (!w->error.empty()) {
          // The block is abandoned: its parked fibers' stacks go back for reuse.
          if (!hb::kTsan)
            for (Fiber& f : w->fibers)
              if (f.stack >= 0) w->free_stacks.push_back(f.stack);
          std::lock_guard<std::mutex> lock(job->mu);
          if (!job->failed.exchange(true)) {
            job->error = w->error;
            job->code = w->error_code;
          }
        }
      }
      hb::release(&job->done);
      if (job->done.fetch_add(1) + 1 == job->total) {
        std::lock_guard<std::mutex> lock(job->mu);
        job->finished.notify_all();
      }
    }
  }

  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<Job*> queue_;
};

Worker& running_worker() { return *tls_worker; }

}  // namespace

cudaError_t run_kernel(const Kernel& k, std::string* message) {
  static Pool& pool = *new Pool;  // never destroyed: its threads live as long as the process
  return pool.run(k, message);
}

std::string schedule_name() { return schedule().name; }

// ------------------------------------------------------------------ scheduling points (device)
int block_barrier(Sync kind, int predicate, const char* file, int line) {
  Worker& w = running_worker();
  Fiber* f = w.current;
  f->state = State::kBarrier;
  f->kind = kind;
  f->file = file;
  f->line = line;
  f->value = static_cast<uint64_t>(predicate);
  f->barrier_slot = static_cast<int>(w.barriers & 1);
  hb::release(&w.barrier_sync[f->barrier_slot]);
  yield_to_scheduler(f);
  hb::acquire(&w.barrier_sync[f->barrier_slot]);
  return static_cast<int>(f->result);
}

namespace {
// The calling fiber, its warp operation's operands set, waits until the operation completes;
// returns its result.
uint64_t wait_at_warp_op(Worker& w, Fiber* f, unsigned mask) {
  f->warp_slot = static_cast<int>(f->warp_ops++ & 1);
  hb::release(&f->warp_sync[f->warp_slot]);
  yield_to_scheduler(f);
  if (hb::kTsan) {
    Fiber* lanes = &w.fibers[f->index & ~31];
    for (int j = 0; j < 32; ++j)
      if ((mask >> j) & 1u) hb::acquire(&lanes[j].warp_sync[(f->lane_slots >> j) & 1u]);
  }
  return f->result;
}
}  // namespace

uint64_t warp_op(Sync kind, unsigned mask, uint64_t value, int arg, int width, const char* file,
                 int line) {
  Worker& w = running_worker();
  Fiber* f = w.current;
  f->state = State::kWarp;
  f->kind = kind;
  f->file = file;
  f->line = line;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  return wait_at_warp_op(w, f, mask);
}

const void* warp_gather(Sync kind, unsigned mask, const void* mine, size_t bytes, const char* file,
                        int line) {
  Worker& w = running_worker();
  Fiber* f = w.current;
  if (bytes > kMaxGatherBytes) {
    w.fail(cudaErrorLaunchFailure, *f, std::string("simulator: ") + sync_name(kind) + " at " +
                                           file + ":" + std::to_string(line) + " exchanges " +
                                           std::to_string(bytes) + " bytes per lane (at most " +
                                           std::to_string(kMaxGatherBytes) + ")");
    bytes = 0;
  }
  f->state = State::kWarp;
  f->kind = kind;
  f->file = file;
  f->line = line;
  f->mask = mask;
  f->value = 0;
  f->arg = static_cast<int>(bytes);
  f->width = 32;
  f->blob = mine;
  return reinterpret_cast<const void*>(static_cast<uintptr_t>(wait_at_warp_op(w, f, mask)));
}

unsigned active_mask() {
  Worker& w = running_worker();
  const int base = w.current->index & ~31;
  const int lanes = std::min<int>(32, static_cast<int>(w.fibers.size()) - base);
  unsigned m = 0;
  for (int j = 0; j < lanes; ++j)
    if (w.fibers[base + j].state != State::kExited) m |= 1u << j;
  return m;
}

void* dynamic_shared() { return running_worker().dynamic_shared; }

}  // namespace pcn_sim
