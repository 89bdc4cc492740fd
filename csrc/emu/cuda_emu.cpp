// Runtime of the CUDA emulator (see cuda_emu.h). Linux only (ucontext, ELF symbol table).
//
// A pool of worker OS threads, grown on demand and reused by every launch. A launch deals its
// blocks, in a seeded random order (SAL_EXT_EMU_SEED, default 0, mixed with a launch counter),
// round-robin to its workers (SAL_EXT_EMU_WORKERS, default min(4, max(2, cores)); 1 under ASan),
// which run them at the same time. A worker runs one block at a time: the block's threads are
// fibers (ucontext) on the worker's thread, and a fiber runs until it reaches a __syncthreads or
// a warp collective or exits; the worker then resumes one of the block's runnable fibers, chosen
// by a generator seeded from the seed, the launch and the block, so the schedule of a block is
// reproducible (the interleaving of blocks on different workers is the OS's; with
// SAL_EXT_EMU_WORKERS=1 the whole launch is). A waiting thread is a fiber nobody resumes: it
// costs no CPU and no OS thread. Every rendezvous is booked by the one worker thread of its
// block, which makes the checks exact: a barrier reached after a thread exited, lanes of one
// mask at different collectives or with different masks, a lane exiting while its warp waits
// for it, and a deadlock (no runnable thread left while some wait) are reported as soon as
// they happen. A thread that never reaches a rendezvous (an endless loop) is caught by the
// launch's watchdog (SAL_EXT_EMU_TIMEOUT seconds, default 300): the process then stops with a
// message naming the kernel, as a hang is worse.
//
// Under ThreadSanitizer every emulated thread is a TSan fiber (thread t of every block of its
// worker), switched to without synchronisation; the emulator's own bookkeeping is hidden from
// TSan (AnnotateIgnore*), and happens-before is declared exactly where CUDA gives it: every
// arrival at a barrier or collective before every departure from it, the launch before every
// thread of it, every thread before the launch's return; and, as the one addition, a block
// before the next block of the same worker (which reuses its shared memory and stacks). So
// TSan reports any two unordered accesses of the kernel in a block, and between two blocks
// dealt to different workers (TSan needs no real overlap in time for that). Under ASan the
// fiber switches are announced (__sanitizer_start/finish_switch_fiber).
#include "emu/cuda_emu.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <ucontext.h>
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

#if defined(__SANITIZE_ADDRESS__)
#define SAL_EMU_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SAL_EMU_ASAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define SAL_EMU_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SAL_EMU_TSAN 1
#endif
#endif

#if defined(SAL_EMU_ASAN)
extern "C" {
void __sanitizer_start_switch_fiber(void** fake_stack_save, const void* bottom, size_t size);
void __sanitizer_finish_switch_fiber(void* fake_stack_save, const void** bottom_old, size_t* size_old);
}
#endif
#if defined(SAL_EMU_TSAN)
extern "C" {
void* __tsan_get_current_fiber();
void* __tsan_create_fiber(unsigned flags);
void __tsan_switch_to_fiber(void* fiber, unsigned flags);
void __tsan_acquire(void* addr);
void __tsan_release(void* addr);
void AnnotateIgnoreReadsBegin(const char* f, int l);
void AnnotateIgnoreReadsEnd(const char* f, int l);
void AnnotateIgnoreWritesBegin(const char* f, int l);
void AnnotateIgnoreWritesEnd(const char* f, int l);
void AnnotateIgnoreSyncBegin(const char* f, int l);
void AnnotateIgnoreSyncEnd(const char* f, int l);
}
#endif

thread_local uint3 threadIdx;
thread_local uint3 blockIdx;
thread_local dim3 blockDim;
thread_local dim3 gridDim;

namespace sal_emu {
namespace {

constexpr size_t kMaxDynamicShared = 48 * 1024;  // without cudaFuncSetAttribute opt-in
constexpr size_t kCanary = 64;
constexpr uint32_t kWorkerBits = 255;  // low bits of Team::gen: the launch's worker count
constexpr unsigned char kPoison = 0xFF;  // float / double NaN, integer -1
constexpr unsigned char kCanaryByte = 0xA5;
constexpr size_t kStack = 128 * 1024;  // per fiber, below it a guard page
#if defined(SAL_EMU_ASAN)
constexpr bool kAsan = true;  // exact-size dynamic shared memory (ASan reports any overflow), one worker
#else
constexpr bool kAsan = false;
#endif

struct Abort {};  // unwinds a kernel thread after an error in its launch

// ---- ThreadSanitizer: what the emulator declares (no-ops in other builds) ------------------
// The emulator's bookkeeping: invisible to TSan (neither accesses nor synchronisation).
struct Quiet {
#if defined(SAL_EMU_TSAN)
  Quiet() {
    AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
    AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
    AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
  }
  ~Quiet() {
    AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
    AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
    AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  }
#else
  Quiet() {}  // (user-provided: no unused-variable warning)
#endif
  Quiet(const Quiet&) = delete;
  Quiet& operator=(const Quiet&) = delete;
};
inline void hb_release(void* a) {
#if defined(SAL_EMU_TSAN)
  __tsan_release(a);
#else
  (void)a;
#endif
}
inline void hb_acquire(void* a) {
#if defined(SAL_EMU_TSAN)
  __tsan_acquire(a);
#else
  (void)a;
#endif
}

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
std::string triple(uint3 v) {
  return "(" + std::to_string(v.x) + "," + std::to_string(v.y) + "," + std::to_string(v.z) + ")";
}

// ---- static shared memory: function-static variables of the kernel translation units -------
struct SharedSymbol {
  size_t value;  // address (plain static) or offset in the module's TLS block (thread_local)
  size_t n;
  bool tls;
};
struct Region {
  unsigned char* p;
  size_t n;
};

std::vector<SharedSymbol> find_static_shared(std::string* why, std::string* module) {
  std::vector<SharedSymbol> out;
  Dl_info info{};
  link_map* lm = nullptr;
  if (!dladdr1(reinterpret_cast<void*>(&find_static_shared), &info, reinterpret_cast<void**>(&lm),
               RTLD_DL_LINKMAP) || lm == nullptr || info.dli_fname == nullptr) {
    *why = "dladdr failed";
    return out;
  }
  *module = info.dli_fname;
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
    } else if (in_kernel_tu && bind == STB_LOCAL && (type == STT_OBJECT || type == STT_TLS) && s.st_size > 0 &&
               s.st_shndx != SHN_UNDEF && name.compare(0, 3, "_ZZ") == 0) {
      out.push_back(SharedSymbol{type == STT_TLS ? size_t(s.st_value) : size_t(lm->l_addr + s.st_value),
                                 size_t(s.st_size), type == STT_TLS});
    }
  }
  return out;
}

// ---- a launch, its workers and their fibers ----------------------------------------------------
struct Launch {
  LaunchSite site{};
  dim3 grid_dim, block_dim;
  size_t shmem = 0;
  void (*body)(void*) = nullptr;
  void* ctx = nullptr;
  int nthreads = 0;
  int workers = 1;
  uint64_t seed = 0, number = 0;
  std::vector<uint3> order;
  std::atomic<bool> failed{false};
  std::mutex error_m;
  std::string error;
  std::atomic<int> left{0};
  std::atomic<uint32_t> finished{0};
  char start_sync = 0, done_sync = 0;  // TSan happens-before: launch -> threads -> return
};

// Records the launch's first error (no throw).
void set_error(Launch& L, const std::string& who, const std::string& what) {
  {
    std::lock_guard<std::mutex> g(L.error_m);
    if (L.error.empty())
      L.error = std::string("kernel ") + L.site.kernel + " (launched at " + site(L.site.file, L.site.line) + ")" +
                (who.empty() ? std::string() : ", " + who) + ": " + what;
  }
  L.failed.store(true, std::memory_order_release);
}

struct Context {
  ucontext_t uc{};
  void* tsan = nullptr;
  void* fake_stack = nullptr;  // ASan's
  const void* bottom = nullptr;
  size_t size = 0;
};

// Barrier generation or warp rendezvous: one per meeting, alive until the block ends (under TSan
// its address is the happens-before token of that meeting alone).
struct Meet {
  Coll op;
  bool barrier;
  const char* file;
  int line;
  unsigned mask = 0, arrived_lanes = 0;
  int arrived = 0;
  uint64_t values[32] = {};
};

struct Fiber {
  Context ctx;
  unsigned char* stack = nullptr;  // kStack usable bytes
  int tid = 0;
  uint3 idx{};
  bool exited = false;
  Meet* waits_at = nullptr;
};

struct Worker {
  Context sched;
  std::vector<std::unique_ptr<Fiber>> fibers;  // pool (stacks kept)
  std::vector<Region> shared;                  // this thread's static shared memory
  bool shared_done = false;
  unsigned char* dyn = nullptr;  // the launch's dynamic shared memory (+ canary)
  // the running block
  Launch* L = nullptr;
  uint3 block{};
  int n = 0, live = 0, first_exited = -1;
  Fiber* cur = nullptr;
  Meet* bar = nullptr;
  std::vector<std::vector<Meet*>> pending;  // per warp
  std::vector<std::unique_ptr<Meet>> meets;
  std::vector<int> ready;
  std::mt19937_64 rng;
  char block_start = 0, block_done = 0;  // TSan happens-before: a block -> the worker's next block
};

thread_local Worker* t_worker = nullptr;
thread_local cudaError_t t_last_error = cudaSuccess;
thread_local std::string t_last_message;

struct Team {
  std::mutex launch_m;  // one launch at a time
  std::vector<SharedSymbol> statics;
  std::string module;
  size_t static_bytes = 0;
  bool statics_done = false;
  std::string statics_error;
  int size = 0;
  std::atomic<uint32_t> gen{0};  // (launch number << 8) | workers of that launch
  uint32_t epoch = 0;
  uint64_t launches = 0;
  Launch slot;  // reused (never freed: a worker may touch it right after its last block)
};

Team& team() {
  static Team* t = new Team();  // never destroyed: detached workers may outlive static destructors
  return *t;
}

void find_statics(Team& T) {
  if (T.statics_done) return;
  T.statics = find_static_shared(&T.statics_error, &T.module);
  for (auto& r : T.statics) T.static_bytes += r.n;
  T.statics_done = true;
}

std::string thread_name(const Worker& W, const Fiber& F) {
  return "block " + triple(W.block) + " thread " + triple(F.idx);
}

// Switches from one context to another (announced to the sanitizers); returns when switched back.
void switch_context(Context& from, Context& to, bool from_ends) {
#if defined(SAL_EMU_ASAN)
  __sanitizer_start_switch_fiber(from_ends ? nullptr : &from.fake_stack, to.bottom, to.size);
#else
  (void)from_ends;
#endif
#if defined(SAL_EMU_TSAN)
  __tsan_switch_to_fiber(to.tsan, 1 /* __tsan_switch_to_fiber_no_sync */);
#endif
  swapcontext(&from.uc, &to.uc);
#if defined(SAL_EMU_ASAN)
  __sanitizer_finish_switch_fiber(from.fake_stack, nullptr, nullptr);
#endif
}

[[noreturn]] void fail(Worker& W, const std::string& what) {
  set_error(*W.L, thread_name(W, *W.cur), what);
  throw Abort{};
}

// What every waiting thread of the block is waiting for (deadlock report).
std::string waits(Worker& W) {
  std::ostringstream os;
  if (W.bar)
    os << W.bar->arrived << " thread(s) wait at __syncthreads (" << site(W.bar->file, W.bar->line) << ")";
  for (size_t w = 0; w < W.pending.size(); ++w)
    for (Meet* r : W.pending[w]) {
      if (os.tellp() > 0) os << "; ";
      os << "warp " << w << " lanes " << lanes(r->arrived_lanes) << " wait at " << coll_name(r->op) << " ("
         << site(r->file, r->line) << ") with mask " << hex(r->mask) << " for lanes "
         << lanes(r->mask & ~r->arrived_lanes);
    }
  const int exited = W.n - W.live;
  if (exited) os << "; " << exited << " thread(s) have exited";
  return os.str();
}

Meet* new_meet(Worker& W, Coll op, bool barrier, const char* file, int line, unsigned mask) {
  W.meets.push_back(std::make_unique<Meet>());
  Meet* m = W.meets.back().get();
  m->op = op;
  m->barrier = barrier;
  m->file = file;
  m->line = line;
  m->mask = mask;
  return m;
}

// The running fiber waits at `m` until it is made runnable again (by the meeting's last arrival).
void wait_at(Worker& W, Meet* m) {
  Fiber& F = *W.cur;
  F.waits_at = m;
  switch_context(F.ctx, W.sched, false);
  if (W.L->failed.load(std::memory_order_acquire)) throw Abort{};
}

void wake(Worker& W, Fiber& F) {
  F.waits_at = nullptr;
  W.ready.push_back(F.tid);
}

// A thread of the block leaves the kernel (returned or unwound).
void thread_exit(Worker& W, Fiber& F) {
  Launch& L = *W.L;
  F.exited = true;
  --W.live;
  if (W.first_exited < 0) W.first_exited = F.tid;
  if (L.failed.load(std::memory_order_acquire)) return;
  std::string what;
  if (W.bar) {
    what = "exited while " + std::to_string(W.bar->arrived) + " thread(s) of its block wait at __syncthreads (" +
           site(W.bar->file, W.bar->line) + "): every thread of the block must reach it";
  } else {
    const int warp = F.tid / 32, lane = F.tid % 32;
    for (Meet* r : W.pending[warp])
      if ((r->mask >> lane) & 1u)
        what = "lane " + std::to_string(lane) + " exited while lanes " + lanes(r->arrived_lanes) +
               " of its warp wait for it at " + coll_name(r->op) + " (" + site(r->file, r->line) + ") with mask " +
               hex(r->mask);
  }
  if (!what.empty()) set_error(L, thread_name(W, F), what);
}

// A fiber is thread F.tid of every block its worker runs: it runs the kernel once per block,
// then waits to be resumed for the next block (made once, reused: no per-block setup).
void fiber_main() {
  Worker* w;
  {
    Quiet q;  // (before the first block_start: the worker made this thread's TLS)
    w = t_worker;
  }
  Worker& W = *w;
#if defined(SAL_EMU_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &W.sched.bottom, &W.sched.size);
#endif
  while (true) {
    hb_acquire(&W.block_start);
    Fiber& F = *W.cur;
    Launch& L = *W.L;
    if (!L.failed.load(std::memory_order_acquire)) {
      try {
        L.body(L.ctx);
      } catch (const Abort&) {
      } catch (const std::exception& e) {
        Quiet q;
        set_error(L, thread_name(W, F), std::string("exception: ") + e.what());
      } catch (...) {
        Quiet q;
        set_error(L, thread_name(W, F), "unknown exception");
      }
    }
    hb_release(&L.done_sync);
    hb_release(&W.block_done);
    {
      Quiet q;
      thread_exit(W, F);
    }
    switch_context(F.ctx, W.sched, false);  // resumed as this thread of the next block
  }
}

Fiber& fiber(Worker& W, int tid) {
  while (static_cast<int>(W.fibers.size()) <= tid) {
    auto f = std::make_unique<Fiber>();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    void* p = mmap(nullptr, kStack + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    mprotect(p, page, PROT_NONE);  // a stack overflow faults instead of writing into a neighbour
    f->stack = static_cast<unsigned char*>(p) + page;
    f->tid = static_cast<int>(W.fibers.size());
#if defined(SAL_EMU_TSAN)
    f->ctx.tsan = __tsan_create_fiber(0);  // its blocks acquire what they may see (block_start)
#endif
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // (GCC 12 on a returns_twice call)
    getcontext(&f->ctx.uc);
#pragma GCC diagnostic pop
    f->ctx.uc.uc_stack.ss_sp = f->stack;
    f->ctx.uc.uc_stack.ss_size = kStack;
    f->ctx.uc.uc_link = nullptr;
    f->ctx.bottom = f->stack;
    f->ctx.size = kStack;
    makecontext(&f->ctx.uc, fiber_main, 0);
    W.fibers.push_back(std::move(f));
  }
  return *W.fibers[tid];
}

void resolve_shared(Worker& W, Team& T) {
  if (W.shared_done) return;
  W.shared_done = true;
  unsigned char* tls = nullptr;
  for (const SharedSymbol& s : T.statics) {
    if (s.tls && tls == nullptr) {
      threadIdx.x = 0;  // this module's thread_local block now exists on this thread
      void* h = dlopen(T.module.c_str(), RTLD_LAZY | RTLD_NOLOAD);
      void* base = nullptr;
      if (h == nullptr || dlinfo(h, RTLD_DI_TLS_DATA, &base) != 0 || base == nullptr) {
        std::fprintf(stderr, "sal_ext CUDA emulator: cannot locate the thread-local shared memory of %s\n",
                     T.module.c_str());
        std::abort();
      }
      dlclose(h);
      tls = static_cast<unsigned char*>(base);
    }
    W.shared.push_back(Region{s.tls ? tls + s.value : reinterpret_cast<unsigned char*>(s.value), s.n});
  }
}

bool canary_intact(const Worker& W) {
  if (kAsan) return true;
  for (size_t i = 0; i < kCanary; ++i)
    if (W.dyn[W.L->shmem + i] != kCanaryByte) return false;
  return true;
}

void run_block(Worker& W, Launch& L, uint3 b, uint64_t seed) {
  const int n = L.nthreads;
  {
    Quiet q;
    W.block = b;
    W.n = W.live = n;
    W.first_exited = -1;
    W.bar = nullptr;
    W.pending.resize((n + 31) / 32);
    for (auto& p : W.pending) {
      p.clear();
      p.reserve(32);
    }
    W.ready.clear();
    for (int t = 0; t < n; ++t) W.ready.push_back(t);
    W.rng.seed(seed);
    blockIdx = b;
    for (int t = 0; t < n; ++t) {
      Fiber& F = fiber(W, t);
      const unsigned bx = L.block_dim.x, by = L.block_dim.y;
      F.idx = uint3{t % bx, (t / bx) % by, t / (bx * by)};
      F.exited = false;
      F.waits_at = nullptr;
    }
  }
  {
    Quiet q;
    for (const Region& r : W.shared) std::memset(r.p, kPoison, r.n);
    if (L.shmem) std::memset(W.dyn, kPoison, L.shmem);
    if (!kAsan) std::memset(W.dyn + L.shmem, kCanaryByte, kCanary);
  }
  hb_release(&W.block_start);  // the launch and the worker's earlier blocks, before this one
  {
    Quiet q;
    while (true) {
      if (W.ready.empty()) {
        if (W.live == 0) break;
        // every live thread waits: a deadlock (or the launch failed): resume them to unwind
        if (!L.failed.load(std::memory_order_acquire))
          set_error(L, "block " + triple(b), "deadlock: every live thread of the block waits (" + waits(W) + ")");
        for (int t = 0; t < n; ++t)
          if (W.fibers[t]->waits_at) wake(W, *W.fibers[t]);
        continue;
      }
      const size_t i = W.rng() % W.ready.size();
      Fiber& F = *W.fibers[W.ready[i]];
      W.ready[i] = W.ready.back();
      W.ready.pop_back();
      W.cur = &F;
      threadIdx = F.idx;
      switch_context(W.sched, F.ctx, false);
    }
    W.cur = nullptr;
    if (!canary_intact(W) && !L.failed.load())
      set_error(L, "", "block " + triple(b) + " wrote past the " + std::to_string(L.shmem) +
                           " bytes of dynamic shared memory the launch asked for");
    W.meets.clear();
  }
  // the worker's next block reuses this one's shared memory and stacks: after it
  hb_acquire(&W.block_done);
}

void run_launch(Worker& W, Team& T, Launch& L, int index) {
  hb_acquire(&L.start_sync);
  {
    Quiet q;
    W.L = &L;
    resolve_shared(W, T);
    blockDim = L.block_dim;
    gridDim = L.grid_dim;
    // always allocated (a kernel may declare it and not use it): exactly the launch's size
    // under ASan (any access past it is reported), else followed by a canary checked after
    // every block
    W.dyn = static_cast<unsigned char*>(::operator new(L.shmem + (kAsan ? 0 : kCanary), std::align_val_t(16)));
  }
  for (size_t i = static_cast<size_t>(index); i < L.order.size(); i += static_cast<size_t>(L.workers)) {
    if (L.failed.load(std::memory_order_acquire)) break;
    run_block(W, L, L.order[i], (L.seed * 0x9E3779B97F4A7C15ull + L.number) * 0xBF58476D1CE4E5B9ull + i);
  }
  {
    Quiet q;
    ::operator delete(W.dyn, std::align_val_t(16));
    W.dyn = nullptr;
    W.L = nullptr;
  }
  if (L.left.fetch_sub(1, std::memory_order_acq_rel) == 1) {
    L.finished.store(1, std::memory_order_release);
    futex_wake(&L.finished);
  }
}

// A worker learns a launch's worker count from the word that announces it (never from the
// launch slot: a worker that wakes late for a launch it has no part in must not read the slot
// while the next launch is being set up there).
void worker_main(int index) {
  Team& T = team();
  Worker W;
  t_worker = &W;
#if defined(SAL_EMU_TSAN)
  W.sched.tsan = __tsan_get_current_fiber();
#endif
  uint32_t seen = 0;
  while (true) {
    uint32_t g;
    while ((g = T.gen.load(std::memory_order_acquire)) == seen) futex_wait(&T.gen, seen, 10000);
    seen = g;
    if (index < static_cast<int>(g & kWorkerBits)) run_launch(W, T, T.slot, index);
  }
}

int worker_count(uint64_t nblocks) {
  if (kAsan) return 1;  // plain static shared memory: one block at a time
  const char* s = std::getenv("SAL_EXT_EMU_WORKERS");
  long v = s ? std::atol(s) : 0;
  if (v <= 0) v = std::min(4L, std::max(2L, static_cast<long>(std::thread::hardware_concurrency())));
  v = std::min<long>(v, static_cast<long>(kWorkerBits));
  return static_cast<int>(std::min<uint64_t>(static_cast<uint64_t>(v), nblocks));
}

long timeout_seconds() {
  const char* s = std::getenv("SAL_EXT_EMU_TIMEOUT");
  long v = s ? std::atol(s) : 0;
  return v > 0 ? v : 300;
}

cudaError_t set_last(cudaError_t e, const std::string& msg) {
  t_last_error = e;
  t_last_message = msg;
  return e;
}

}  // namespace

// ---- device-side entry points ----------------------------------------------------------------
void kernel_error(const std::string& what) {
  Worker& W = *t_worker;
  Quiet q;
  fail(W, what);
}

unsigned char* dynamic_shared() { return t_worker->dyn; }  // (declaring it is no use)

void syncthreads(const char* file, int line) {
  Worker& W = *t_worker;
  Meet* m;
  bool last;
  {
    Quiet q;
    if (W.L->failed.load(std::memory_order_acquire)) throw Abort{};
    if (W.first_exited >= 0)
      fail(W, "reached __syncthreads (" + site(file, line) + ") after " + thread_name(W, *W.fibers[W.first_exited]) +
                  " exited: every thread of the block must reach it");
    if (!W.bar) {
      W.bar = new_meet(W, Coll::kSyncwarp, true, file, line, 0);
    } else if (W.bar->line != line || std::strcmp(W.bar->file, file) != 0) {
      fail(W, "reached __syncthreads (" + site(file, line) + ") while " + std::to_string(W.bar->arrived) +
                  " thread(s) wait at another __syncthreads (" + site(W.bar->file, W.bar->line) + ")");
    }
    m = W.bar;
    last = ++m->arrived == W.n;
    if (last) {
      W.bar = nullptr;
      for (int t = 0; t < W.n; ++t)
        if (W.fibers[t]->waits_at == m) wake(W, *W.fibers[t]);
    }
  }
  hb_release(m);
  if (!last) {
    Quiet q;
    wait_at(W, m);
  }
  hb_acquire(m);
}

uint64_t warp_collective(Coll op, unsigned mask, uint64_t value, int src, const char* file, int line) {
  Worker& W = *t_worker;
  const int tid = W.cur->tid, warp = tid / 32, lane = tid % 32;
  Meet* r = nullptr;
  bool last;
  {
    Quiet q;
    if (W.L->failed.load(std::memory_order_acquire)) throw Abort{};
    auto here = [&] { return std::string(coll_name(op)) + " (" + site(file, line) + ") with mask " + hex(mask); };
    if (!((mask >> lane) & 1u)) fail(W, "lane " + std::to_string(lane) + " calls " + here() + ", which does not name it");
    const int lanes_here = std::min(32, W.n - warp * 32);
    if (lanes_here < 32 && (mask >> lanes_here) != 0u)
      fail(W, here() + " names lanes that do not exist (the warp has " + std::to_string(lanes_here) + ")");
    for (int l = 0; l < lanes_here; ++l)
      if (((mask >> l) & 1u) && W.fibers[warp * 32 + l]->exited)
        fail(W, "lane " + std::to_string(lane) + " calls " + here() + " but lane " + std::to_string(l) + " has exited");
    auto& pend = W.pending[warp];
    // join the pending rendezvous of this call site and mask; lanes of one warp may wait at other
    // collectives meanwhile (independent groups, or a group that arrives here later)
    for (Meet* p : pend) {
      if (p->line != line || std::strcmp(p->file, file) != 0 || (p->mask & mask) == 0u) continue;
      if (p->mask != mask || p->op != op)
        fail(W, "lane " + std::to_string(lane) + " calls " + here() + " while lanes " + lanes(p->arrived_lanes) +
                    " wait there with mask " + hex(p->mask) +
                    ": every lane named by a collective's mask must pass the same mask");
      r = p;
      break;
    }
    if (!r) {
      r = new_meet(W, op, false, file, line, mask);
      pend.push_back(r);
    }
    r->values[lane] = value;
    r->arrived_lanes |= 1u << lane;
    last = r->arrived_lanes == mask;
    if (last) {
      pend.erase(std::find(pend.begin(), pend.end(), r));
      for (int l = 0; l < 32; ++l)
        if (l != lane && ((mask >> l) & 1u)) wake(W, *W.fibers[warp * 32 + l]);
    }
  }
  hb_release(r);
  if (!last) {
    Quiet q;
    wait_at(W, r);
  }
  hb_acquire(r);
  Quiet q;
  if (src >= 0) {
    if (!((mask >> src) & 1u))
      fail(W, "warp shuffle at " + site(file, line) + ": lane " + std::to_string(lane) + " reads lane " +
                  std::to_string(src) + ", which is not in the mask (undefined value on a GPU)");
    return r->values[src];
  }
  uint64_t bits = 0;
  for (int l = 0; l < 32; ++l)
    if (((mask >> l) & 1u) && r->values[l]) bits |= 1u << l;
  return bits;
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
  find_statics(T);
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
  L.seed = seed_env ? std::strtoull(seed_env, nullptr, 10) : 0;
  L.number = T.launches++;
  std::mt19937_64 rng(L.seed * 0x9E3779B97F4A7C15ull + L.number);
  std::shuffle(L.order.begin(), L.order.end(), rng);
  L.workers = worker_count(nblocks);
  L.failed.store(false);
  L.error.clear();
  L.left.store(L.workers);
  L.finished.store(0);

  while (T.size < L.workers) {
    std::thread(worker_main, T.size).detach();
    ++T.size;
  }
  hb_release(&L.start_sync);
  T.gen.store((++T.epoch << 8) | static_cast<uint32_t>(L.workers), std::memory_order_release);
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
  hb_acquire(&L.done_sync);
  if (L.failed.load()) return set_last(cudaErrorLaunchFailure, "CUDA emulator: " + L.error);
  return cudaSuccess;
}

size_t static_shared_bytes(size_t* count) {
  Team& T = team();
  std::lock_guard<std::mutex> guard(T.launch_m);
  find_statics(T);
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
