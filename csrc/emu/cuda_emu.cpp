// Runtime of the CUDA emulator (see cuda_emu.h). Linux only (futex, ELF symbol table).
//
// A team of OS threads, grown on demand and reused by every launch. A launch runs its blocks
// one after another, in a seeded random order (SAL_EXT_EMU_SEED, default 0, mixed with a launch
// counter); thread t of the team is thread t of every block. Between blocks the team meets at a
// barrier whose last thread checks the dynamic shared memory's canary, poisons all shared memory
// and moves on to the next block. Every rendezvous of a block (its __syncthreads, its warps'
// collectives) is booked under the block's mutex, which makes the checks exact: a barrier
// reached after a thread exited, lanes of one mask at different collectives or with different
// masks, a lane exiting while its warp waits for it, and a deadlock (every live thread
// waiting) are reported as soon as they happen. A thread that never reaches a rendezvous (an
// endless loop) is caught by the launch's watchdog (SAL_EXT_EMU_TIMEOUT seconds, default 300):
// the process then stops with a message naming the kernel, as a hang is worse.
// Waiting threads sleep on a futex; the data they wait for is published through release /
// acquire atomics and the mutex, which ThreadSanitizer understands.
#include "emu/cuda_emu.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <memory>
#include <mutex>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace sal_emu {
namespace {

constexpr size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute opt-in
constexpr size_t kCanary = 64;
constexpr uint32_t kThreadBits = 2047;  // low bits of Team::gen: a block's thread count (<= 1024)
constexpr unsigned char kPoison = 0xFF;  // float / double NaN, integer -1
constexpr unsigned char kCanaryByte = 0xA5;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsan = true;  // exact-size dynamic shared memory: ASan reports any overflow
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAsan = true;
#else
constexpr bool kAsan = false;
#endif
#else
constexpr bool kAsan = false;
#endif

struct Abort {};  // unwinds a kernel thread after an error in its launch

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected, long ms) {
  timespec ts{ms / 1000, (ms % 1000) * 1000000L};
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, &ts, nullptr, 0);
}
void futex_wake(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

const char* coll_name(Coll op) {
  switch (op) {
    case Coll::kShfl: return "__shfl_sync";
    case Coll::kShflUp: return "__shfl_up_sync";
    case Coll::kShflDown: return "__shfl_down_sync";
    case Coll::kShflXor: return "__shfl_xor_sync";
    case Coll::kBallot: return "__ballot_sync";
    case Coll::kAny: return "__any_sync";
    case Coll::kAll: return "__all_sync";
    default: return "__syncwarp";
  }
}

std::string base_name(const char* file) {
  std::string f(file);
  const size_t s = f.find_last_of('/');
  return s == std::string::npos ? f : f.substr(s + 1);
}
std::string site(const char* file, int line) { return base_name(file) + ":" + std::to_string(line); }
std::string hex(unsigned m) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", m);
  return b;
}
std::string lanes(unsigned m) {  // "0-15,17"
  std::string s;
  for (int l = 0; l < 32;) {
    if (!((m >> l) & 1u)) {
      ++l;
      continue;
    }
    int e = l;
    while (e + 1 < 32 && ((m >> (e + 1)) & 1u)) ++e;
    if (!s.empty()) s += ",";
    s += e == l ? std::to_string(l) : std::to_string(l) + "-" + std::to_string(e);
    l = e + 1;
  }
  return s.empty() ? "none" : s;
}

struct Rendezvous {
  Coll op;
  const char* file;
  int line;
  unsigned mask;
  unsigned arrived = 0;
  int waiters = 0;
  uint64_t values[32] = {};
  std::atomic<uint32_t> done{0};
};

struct ThreadState {
  bool exited = false;
};

struct Block {
  std::mutex m;
  int nthreads = 0, live = 0, blocked = 0, first_exited = -1;
  int bar_arrived = 0;
  const char* bar_file = nullptr;
  int bar_line = 0;
  std::atomic<uint32_t> bar_gen{0};
  std::vector<std::vector<std::shared_ptr<Rendezvous>>> pending;  // per warp
  std::vector<ThreadState> ts;

  void reset(int n) {
    nthreads = live = n;
    blocked = 0;
    first_exited = -1;
    bar_arrived = 0;
    bar_file = nullptr;
    pending.assign((n + 31) / 32, {});
    ts.assign(n, ThreadState{});
  }
};

struct Launch {
  LaunchSite site{};
  dim3 grid_dim, block_dim;
  size_t shmem = 0;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  int nthreads = 0;
  std::vector<uint3> order;
  size_t current = 0;  // index into order of the running block
  unsigned char* dyn = nullptr;
  std::atomic<bool> failed{false};
  std::mutex error_m;
  std::string error;
  Block block;
  std::atomic<int> end_arrived{0};
  std::atomic<uint32_t> end_gen{0};
  bool last = false;  // set by the end barrier's completer: no block follows
  std::atomic<int> left{0};
  std::atomic<uint32_t> finished{0};
};

// ---- static shared memory: function-static variables of the kernel translation units -------
struct Region {
  unsigned char* p;
  size_t n;
};

std::vector<Region> find_static_shared(std::string* why) {
  std::vector<Region> out;
  Dl_info info{};
  link_map* lm = nullptr;
  if (!dladdr1(reinterpret_cast<void*>(&find_static_shared), &info, reinterpret_cast<void**>(&lm),
               RTLD_DL_LINKMAP) || lm == nullptr || info.dli_fname == nullptr) {
    *why = "dladdr failed";
    return out;
  }
  std::ifstream f(info.dli_fname, std::ios::binary);
  std::vector<char> data((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (data.size() < sizeof(Elf64_Ehdr)) {
    *why = std::string("cannot read ") + info.dli_fname;
    return out;
  }
  const auto* eh = reinterpret_cast<const Elf64_Ehdr*>(data.data());
  const auto* sh = reinterpret_cast<const Elf64_Shdr*>(data.data() + eh->e_shoff);
  const Elf64_Shdr* symtab = nullptr;
  for (int i = 0; i < eh->e_shnum; ++i)
    if (sh[i].sh_type == SHT_SYMTAB) symtab = &sh[i];
  if (symtab == nullptr) {
    *why = std::string(info.dli_fname) + " has no symbol table (stripped build: use tools/emu_build.sh)";
    return out;
  }
  const char* strtab = data.data() + sh[symtab->sh_link].sh_offset;
  const auto* syms = reinterpret_cast<const Elf64_Sym*>(data.data() + symtab->sh_offset);
  const size_t nsym = symtab->sh_size / sizeof(Elf64_Sym);
  bool in_kernel_tu = false;
  for (size_t i = 0; i < nsym; ++i) {
    const Elf64_Sym& s = syms[i];
    const std::string name = strtab + s.st_name;
    const int type = ELF64_ST_TYPE(s.st_info), bind = ELF64_ST_BIND(s.st_info);
    if (type == STT_FILE) {  // the local symbols of one object file follow its STT_FILE entry
      in_kernel_tu = name.size() > 7 && name.compare(name.size() - 7, 7, ".cu.cpp") == 0;
    } else if (in_kernel_tu && bind == STB_LOCAL && type == STT_OBJECT && s.st_size > 0 &&
               s.st_shndx != SHN_UNDEF && name.compare(0, 3, "_ZZ") == 0) {
      out.push_back(Region{reinterpret_cast<unsigned char*>(lm->l_addr + s.st_value), s.st_size});
    }
  }
  return out;
}

// ---- the team --------------------------------------------------------------------------------
thread_local Launch* t_launch = nullptr;
thread_local int t_tid = 0;
thread_local std::shared_ptr<Rendezvous> t_last;  // keeps the last collective's values alive
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_last_message;

struct Team {
  std::mutex launch_m;  // one launch at a time (the static shared memory is global)
  std::vector<Region> statics;
  size_t static_bytes = 0;
  bool statics_done = false;
  std::string statics_error;
  int size = 0;
  std::atomic<uint32_t> gen{0};  // (launch number << 11) | threads per block of that launch
  uint32_t epoch = 0;
  uint64_t launches = 0;
  Launch slot;  // reused (never freed: a worker may touch it right after its last block)
};

Team& team() {
  static Team* t = new Team();  // never destroyed: detached workers may outlive static destructors
  return *t;
}

std::string thread_name(const Launch& L, int tid) {
  const unsigned bx = L.block_dim.x, by = L.block_dim.y;
  const unsigned x = tid % bx, y = (tid / bx) % by, z = tid / (bx * by);
  const uint3 b = L.order[L.current];
  return "block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) +
         ") thread (" + std::to_string(x) + "," + std::to_string(y) + "," + std::to_string(z) + ")";
}

void wake_all(Launch& L) {
  L.block.bar_gen.fetch_add(0x10000, std::memory_order_release);  // waiters re-check `failed`
  futex_wake(&L.block.bar_gen);
  for (auto& w : L.block.pending)
    for (auto& r : w) futex_wake(&r->done);
  futex_wake(&L.end_gen);
}

// Records the launch's first error (no throw); caller holds no lock or the block lock.
void set_error(Launch& L, int tid, const std::string& what) {
  {
    std::lock_guard<std::mutex> g(L.error_m);
    if (L.error.empty())
      L.error = std::string("kernel ") + L.site.kernel + " (launched at " + site(L.site.file, L.site.line) +
                ")" + (tid >= 0 ? ", " + thread_name(L, tid) : std::string()) + ": " + what;
  }
  L.failed.store(true, std::memory_order_release);
}

[[noreturn]] void fail_locked(Launch& L, std::unique_lock<std::mutex>& lk, const std::string& what) {
  set_error(L, t_tid, what);
  wake_all(L);
  lk.unlock();
  throw Abort{};
}

// What every waiting thread of the block is waiting for (deadlock report).
std::string waits(Launch& L) {
  Block& B = L.block;
  std::ostringstream os;
  if (B.bar_arrived)
    os << B.bar_arrived << " thread(s) wait at __syncthreads (" << site(B.bar_file, B.bar_line) << ")";
  for (size_t w = 0; w < B.pending.size(); ++w)
    for (auto& r : B.pending[w]) {
      if (os.tellp() > 0) os << "; ";
      os << "warp " << w << " lanes " << lanes(r->arrived) << " wait at " << coll_name(r->op) << " ("
         << site(r->file, r->line) << ") with mask " << hex(r->mask) << " for lanes "
         << lanes(r->mask & ~r->arrived);
    }
  int exited = 0;
  for (auto& t : B.ts) exited += t.exited;
  if (exited) os << "; " << exited << " thread(s) have exited";
  return os.str();
}

void check_deadlock(Launch& L, std::unique_lock<std::mutex>& lk) {
  Block& B = L.block;
  if (B.live > 0 && B.blocked == B.live)
    fail_locked(L, lk, "deadlock: every live thread of the block waits (" + waits(L) + ")");
}

void wait_for(Launch& L, std::atomic<uint32_t>* word, uint32_t seen) {
  while (word->load(std::memory_order_acquire) == seen) {
    if (L.failed.load(std::memory_order_acquire)) throw Abort{};
    futex_wait(word, seen, 200);
  }
  if (L.failed.load(std::memory_order_acquire)) throw Abort{};
}

long timeout_seconds() {
  const char* s = std::getenv("SAL_EXT_EMU_TIMEOUT");
  long v = s ? std::atol(s) : 0;
  return v > 0 ? v : 300;
}

void poison_block(Team& T, Launch& L) {
  for (const Region& r : T.statics) std::memset(r.p, kPoison, r.n);
  if (L.shmem) std::memset(L.dyn, kPoison, L.shmem);
  if (!kAsan) std::memset(L.dyn + L.shmem, kCanaryByte, kCanary);
}

bool canary_intact(const Launch& L) {
  if (kAsan) return true;
  for (size_t i = 0; i < kCanary; ++i)
    if (L.dyn[L.shmem + i] != kCanaryByte) return false;
  return true;
}

// A thread of the block leaves the kernel (returned or unwound).
void thread_exit(Launch& L, int tid) {
  Block& B = L.block;
  std::unique_lock<std::mutex> lk(B.m);
  B.ts[tid].exited = true;
  --B.live;
  if (B.first_exited < 0) B.first_exited = tid;
  if (L.failed.load(std::memory_order_acquire)) return;
  std::string what;
  if (B.bar_arrived > 0) {
    what = "exited while " + std::to_string(B.bar_arrived) + " thread(s) of its block wait at __syncthreads (" +
           site(B.bar_file, B.bar_line) + "): every thread of the block must reach it";
  } else {
    const int warp = tid / 32, lane = tid % 32;
    for (auto& r : B.pending[warp])
      if ((r->mask >> lane) & 1u)
        what = "lane " + std::to_string(lane) + " exited while lanes " + lanes(r->arrived) + " of its warp wait for it at " +
               coll_name(r->op) + " (" + site(r->file, r->line) + ") with mask " + hex(r->mask);
    if (what.empty() && B.live > 0 && B.blocked == B.live)
      what = "deadlock after this thread exited: every live thread waits (" + waits(L) + ")";
  }
  if (!what.empty()) {
    set_error(L, tid, what);
    wake_all(L);
  }
}

void run_blocks(Team& T, Launch& L, int tid) {
  t_launch = &L;
  t_tid = tid;
  const unsigned bx = L.block_dim.x, by = L.block_dim.y;
  threadIdx = uint3{tid % bx, (tid / bx) % by, tid / (bx * by)};
  blockDim = L.block_dim;
  gridDim = L.grid_dim;
  while (true) {
    blockIdx = L.order[L.current];
    if (!L.failed.load(std::memory_order_acquire)) {
      try {
        L.body(L.ctx);
      } catch (const Abort&) {
      } catch (const std::exception& e) {
        set_error(L, tid, std::string("exception: ") + e.what());
        std::lock_guard<std::mutex> g(L.block.m);
        wake_all(L);
      } catch (...) {
        set_error(L, tid, "unknown exception");
        std::lock_guard<std::mutex> g(L.block.m);
        wake_all(L);
      }
    }
    t_last.reset();
    thread_exit(L, tid);
    // the team meets between blocks; the last one prepares the next block
    const uint32_t g = L.end_gen.load(std::memory_order_acquire);
    if (L.end_arrived.fetch_add(1, std::memory_order_acq_rel) + 1 == L.nthreads) {
      L.end_arrived.store(0, std::memory_order_relaxed);
      if (!canary_intact(L) && !L.failed.load())
        set_error(L, -1, "block (" + std::to_string(L.order[L.current].x) + "," + std::to_string(L.order[L.current].y) +
                             "," + std::to_string(L.order[L.current].z) + ") wrote past the " +
                             std::to_string(L.shmem) + " bytes of dynamic shared memory the launch asked for");
      if (L.current + 1 < L.order.size() && !L.failed.load()) {
        ++L.current;
        L.block.reset(L.nthreads);
        poison_block(T, L);
        L.last = false;
      } else {
        L.last = true;
      }
      L.end_gen.store(g + 1, std::memory_order_release);
      futex_wake(&L.end_gen);
    } else {
      while (L.end_gen.load(std::memory_order_acquire) == g) futex_wait(&L.end_gen, g, 1000);
    }
    if (L.last) break;
  }
  t_launch = nullptr;
  if (L.left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    L.finished.store(1, std::memory_order_release);
    futex_wake(&L.finished);
  }
}

// A worker learns a launch's thread count from the word that announces it (never from the
// launch slot: a worker that wakes late for a launch it has no part in must not read the slot
// while the next launch is being set up there).
void worker(int index) {
  Team& T = team();
  uint32_t seen = 0;
  while (true) {
    uint32_t g;
    while ((g = T.gen.load(std::memory_order_acquire)) == seen) futex_wait(&T.gen, seen, 10000);
    seen = g;
    if (index < static_cast<int>(g & kThreadBits)) run_blocks(T, T.slot, index);
  }
}

cudaError_t set_last(cudaError_t e, const std::string& msg) {
  t_last_error = e;
  t_last_message = msg;
  return e;
}

}  // namespace

// ---- device-side entry points ----------------------------------------------------------------
void kernel_error(const std::string& what) {
  Launch& L = *t_launch;
  set_error(L, t_tid, what);
  {
    std::lock_guard<std::mutex> g(L.block.m);
    wake_all(L);
  }
  throw Abort{};
}

unsigned char* dynamic_shared() { return t_launch->dyn; }  // (declaring it is no use)

void syncthreads(const char* file, int line) {
  Launch& L = *t_launch;
  Block& B = L.block;
  std::unique_lock<std::mutex> lk(B.m);
  if (L.failed.load(std::memory_order_acquire)) throw Abort{};
  if (B.first_exited >= 0)
    fail_locked(L, lk, "reached __syncthreads (" + site(file, line) + ") after " + thread_name(L, B.first_exited) +
                           " exited: every thread of the block must reach it");
  if (B.bar_arrived == 0) {
    B.bar_file = file;
    B.bar_line = line;
  } else if (B.bar_line != line || std::strcmp(B.bar_file, file) != 0) {
    fail_locked(L, lk, "reached __syncthreads (" + site(file, line) + ") while " + std::to_string(B.bar_arrived) +
                           " thread(s) wait at another __syncthreads (" + site(B.bar_file, B.bar_line) + ")");
  }
  const uint32_t g = B.bar_gen.load(std::memory_order_relaxed);
  if (++B.bar_arrived == B.nthreads) {
    B.bar_arrived = 0;
    B.blocked -= B.nthreads - 1;
    B.bar_gen.store(g + 1, std::memory_order_release);
    lk.unlock();
    futex_wake(&B.bar_gen);
    return;
  }
  ++B.blocked;
  check_deadlock(L, lk);
  lk.unlock();
  wait_for(L, &B.bar_gen, g);
}

const uint64_t* warp_collective(Coll op, unsigned mask, uint64_t value, const char* file, int line) {
  Launch& L = *t_launch;
  Block& B = L.block;
  const int tid = t_tid, warp = tid / 32, lane = tid % 32;
  std::unique_lock<std::mutex> lk(B.m);
  if (L.failed.load(std::memory_order_acquire)) throw Abort{};
  auto here = [&] { return std::string(coll_name(op)) + " (" + site(file, line) + ") with mask " + hex(mask); };
  if (!((mask >> lane) & 1u)) fail_locked(L, lk, "lane " + std::to_string(lane) + " calls " + here() + ", which does not name it");
  const int lanes_here = std::min(32, B.nthreads - warp * 32);
  if (lanes_here < 32 && (mask >> lanes_here) != 0u)
    fail_locked(L, lk, here() + " names lanes that do not exist (the warp has " + std::to_string(lanes_here) + ")");
  for (int l = 0; l < lanes_here; ++l)
    if (((mask >> l) & 1u) && B.ts[warp * 32 + l].exited)
      fail_locked(L, lk, "lane " + std::to_string(lane) + " calls " + here() + " but lane " + std::to_string(l) + " has exited");
  std::shared_ptr<Rendezvous> r;
  auto& pend = B.pending[warp];
  // join the pending rendezvous of this call site and mask; lanes of one warp may wait at other
  // collectives meanwhile (independent groups, or a group that arrives here later)
  for (auto& p : pend) {
    if (p->line != line || std::strcmp(p->file, file) != 0 || (p->mask & mask) == 0u) continue;
    if (p->mask != mask || p->op != op)
      fail_locked(L, lk, "lane " + std::to_string(lane) + " calls " + here() + " while lanes " + lanes(p->arrived) +
                             " wait there with mask " + hex(p->mask) +
                             ": every lane named by a collective's mask must pass the same mask");
    r = p;
    break;
  }
  if (!r) {
    r = std::make_shared<Rendezvous>();
    r->op = op;
    r->file = file;
    r->line = line;
    r->mask = mask;
    pend.push_back(r);
  }
  r->values[lane] = value;
  r->arrived |= 1u << lane;
  t_last = r;
  if (r->arrived == mask) {
    pend.erase(std::find(pend.begin(), pend.end(), r));
    B.blocked -= r->waiters;
    r->done.store(1, std::memory_order_release);
    lk.unlock();
    futex_wake(&r->done);
    return r->values;
  }
  ++r->waiters;
  ++B.blocked;
  check_deadlock(L, lk);
  lk.unlock();
  wait_for(L, &r->done, 0);
  return r->values;
}

cudaError_t launch(const LaunchSite& where, const void* /*kernel_address*/, dim3 grid, dim3 block,
                   size_t shmem, cudaStream_t stream, void (*body)(void*), void* ctx) {
  Team& T = team();
  std::lock_guard<std::mutex> guard(T.launch_m);
  const std::string name = std::string("kernel ") + where.kernel + " (launched at " + site(where.file, where.line) + "): ";
  if (stream != nullptr)
    return set_last(cudaErrorInvalidResourceHandle, name + "the emulator runs on stream 0 only");
  const uint64_t threads = uint64_t(block.x) * block.y * block.z;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 0x7FFFFFFFu || grid.y > 65535 || grid.z > 65535)
    return set_last(cudaErrorInvalidConfiguration, name + "invalid grid (" + std::to_string(grid.x) + "," +
                                                       std::to_string(grid.y) + "," + std::to_string(grid.z) + ")");
  if (threads == 0 || threads > 1024 || block.x > 1024 || block.y > 1024 || block.z > 64)
    return set_last(cudaErrorInvalidConfiguration, name + "invalid block (" + std::to_string(block.x) + "," +
                                                       std::to_string(block.y) + "," + std::to_string(block.z) +
                                                       "): at most 1024 threads");
  if (shmem > kMaxDynamicShared)
    return set_last(cudaErrorInvalidValue, name + std::to_string(shmem) + " bytes of dynamic shared memory (at most " +
                                               std::to_string(kMaxDynamicShared) + ")");
  if (!T.statics_done) {
    T.statics = find_static_shared(&T.statics_error);
    for (auto& r : T.statics) T.static_bytes += r.n;
    T.statics_done = true;
  }
  if (!T.statics_error.empty())
    return set_last(cudaErrorLaunchFailure, name + "cannot locate static shared memory: " + T.statics_error);
  const uint64_t nblocks = uint64_t(grid.x) * grid.y * grid.z;
  if (nblocks > (uint64_t(1) << 26))
    return set_last(cudaErrorInvalidConfiguration, name + "grid too large for the emulator");

  Launch& L = T.slot;
  L.site = where;
  L.grid_dim = grid;
  L.block_dim = block;
  L.shmem = shmem;
  L.body = body;
  L.ctx = ctx;
  L.nthreads = static_cast<int>(threads);
  L.order.clear();
  L.order.reserve(nblocks);
  for (unsigned z = 0; z < grid.z; ++z)
    for (unsigned y = 0; y < grid.y; ++y)
      for (unsigned x = 0; x < grid.x; ++x) L.order.push_back(uint3{x, y, z});
  const char* seed_env = std::getenv("SAL_EXT_EMU_SEED");
  const uint64_t seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 0;
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + (T.launches++));
  std::shuffle(L.order.begin(), L.order.end(), rng);
  L.current = 0;
  L.failed.store(false);
  L.error.clear();
  L.last = false;
  L.end_arrived.store(0);
  L.left.store(L.nthreads);
  L.finished.store(0);
  L.block.reset(L.nthreads);
  // always allocated (a kernel may declare it and not use it): exactly the launch's size under
  // ASan (any access past it is reported), else followed by a canary checked after every block
  L.dyn = static_cast<unsigned char*>(::operator new(shmem + (kAsan ? 0 : kCanary), std::align_val_t(16)));
  poison_block(T, L);

  while (T.size < L.nthreads) {
    std::thread(worker, T.size).detach();
    ++T.size;
  }
  T.gen.store((++T.epoch << 11) | static_cast<uint32_t>(L.nthreads), std::memory_order_release);
  futex_wake(&T.gen);

  const auto start = std::chrono::steady_clock::now();
  const long limit = timeout_seconds();
  while (L.finished.load(std::memory_order_acquire) == 0) {
    futex_wait(&L.finished, 0, 1000);
    if (std::chrono::steady_clock::now() - start > std::chrono::seconds(limit) && L.finished.load() == 0) {
      std::fprintf(stderr,
                   "sal_ext CUDA emulator: kernel %s (launched at %s) did not finish within %ld s "
                   "(SAL_EXT_EMU_TIMEOUT): a thread never reaches its next barrier (endless loop?). "
                   "Stopping the process instead of hanging.\n",
                   where.kernel, site(where.file, where.line).c_str(), limit);
      std::fflush(stderr);
      std::abort();
    }
  }
  if (L.dyn != nullptr) ::operator delete(L.dyn, std::align_val_t(16));
  L.dyn = nullptr;
  if (L.failed.load()) return set_last(cudaErrorLaunchFailure, "CUDA emulator: " + L.error);
  return cudaSuccess;
}

size_t static_shared_bytes(size_t* count) {
  Team& T = team();
  std::lock_guard<std::mutex> guard(T.launch_m);
  if (!T.statics_done) {
    T.statics = find_static_shared(&T.statics_error);
    for (auto& r : T.statics) T.static_bytes += r.n;
    T.statics_done = true;
  }
  if (count) *count = T.statics.size();
  return T.static_bytes;
}

}  // namespace sal_emu

// ---- host API --------------------------------------------------------------------------------
cudaError_t cudaGetLastError() {
  const cudaError_t e = sal_emu::t_last_error;
  sal_emu::t_last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() { return sal_emu::t_last_error; }
const char* cudaGetErrorString(cudaError_t err) {
  if (err != cudaSuccess && !sal_emu::t_last_message.empty()) return sal_emu::t_last_message.c_str();
  switch (err) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle: return "invalid resource handle";
    default: return "unspecified launch failure";
  }
}
cudaError_t cudaGetDevice(int* device) {
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0)
    return sal_emu::set_last(cudaErrorInvalidDevice,
                             "CUDA emulator: device " + std::to_string(device) + " does not exist (device 0 only)");
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t stream) {
  if (stream != nullptr) return sal_emu::set_last(cudaErrorInvalidResourceHandle, "CUDA emulator: stream 0 only");
  if (bytes) std::memset(p, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind, cudaStream_t stream) {
  if (stream != nullptr) return sal_emu::set_last(cudaErrorInvalidResourceHandle, "CUDA emulator: stream 0 only");
  if (bytes) std::memcpy(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }
