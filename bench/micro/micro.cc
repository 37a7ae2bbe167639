// brisk_micro / brisk_micro_linked: allocator microbenchmarks (Google
// Benchmark).
//
// Allocator-neutral: every case calls malloc/free (and calloc, realloc,
// posix_memalign, aligned_alloc), so brisk_micro measures whatever
// allocator the process uses: glibc's, or one given with LD_PRELOAD.
// brisk_micro_linked is the same source linked to libbrisk.so.  The
// allocator is detected at run time and recorded in the benchmark context
// ("allocator", "allocator_library"); BRISK_BENCH_ALLOCATOR overrides the
// name.
//
//   brisk_micro [--pin] [Google Benchmark flags]
//
// --pin binds the thread pool's workers round-robin to the processing units
// (bench/topology/pin.h).  JSON and repetitions come from Google Benchmark:
// --benchmark_format=json --benchmark_out=FILE --benchmark_repetitions=N
// --benchmark_filter=REGEX --benchmark_min_time=SECONDS.
//
// Cases:
//   BM_MallocFree/size            malloc then free, one pair per iteration
//   BM_Batch{LIFO,FIFO,Random}    allocate N blocks, then free all N in
//                                 last-in-first-out, allocation or a fixed
//                                 random order; items = pairs
//   BM_Calloc/size                calloc then free
//   BM_ReallocDouble/final        realloc from 16 bytes, doubling up to
//                                 `final`; a byte written at each new end
//   BM_ReallocAppend/final        the same growing 64 bytes at a time
//   BM_PosixMemalign, BM_AlignedAlloc  /alignment/size
//   BM_ProducerConsumer/pairs/size  producer threads allocate, their
//                                 consumer threads free (cross-thread frees)
//   BM_ThreadSweep/threads        1..32 threads each doing a fixed number of
//                                 random malloc/free operations on a private
//                                 working set
// The last two run on a persistent thread pool (see Pool below).
#include <benchmark/benchmark.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "pin.h"

namespace {

bool g_pin = false;

// ---------------------------------------------------------------------------
// Which allocator serves this process.

std::string allocator_library()
{
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    Dl_info info;
    if (sym != nullptr && dladdr(sym, &info) != 0 && info.dli_fname != nullptr)
        return info.dli_fname;
    return "unknown";
}

std::string allocator_name(const std::string &library)
{
    if (const char *env = getenv("BRISK_BENCH_ALLOCATOR"); env != nullptr && *env != '\0')
        return env;
    static const char *const known[][2] = {
        {"brisk", "brisk"},       {"jemalloc", "jemalloc"}, {"tcmalloc", "tcmalloc"},
        {"mimalloc", "mimalloc"}, {"libc.so", "glibc"},
    };
    std::string base = library.substr(library.rfind('/') + 1);
    for (const auto &k : known)
        if (base.find(k[0]) != std::string::npos)
            return k[1];
    return base;
}

// ---------------------------------------------------------------------------
// Small deterministic random numbers (xorshift64*).

struct Rng {
    uint64_t s;
    explicit Rng(uint64_t seed) : s(seed * 0x9E3779B97F4A7C15ull + 1) {}
    uint64_t next()
    {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        return s * 0x2545F4914F6CDD1Dull;
    }
};

inline void touch(void *p, size_t size)
{
    static_cast<volatile char *>(p)[0] = 1;
    if (size > 1)
        static_cast<volatile char *>(p)[size - 1] = 1;
}

// ---------------------------------------------------------------------------
// Single-thread cases.

void BM_MallocFree(benchmark::State &state)
{
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        void *p = malloc(size);
        benchmark::DoNotOptimize(p);
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_MallocFree)
    ->ArgName("size")
    ->Arg(8)->Arg(16)->Arg(32)->Arg(64)->Arg(128)->Arg(256)->Arg(512)->Arg(1024)
    ->Arg(4096)->Arg(16384)->Arg(65536)->Arg(262144)->Arg(1 << 20);

enum class Order { LIFO, FIFO, Random };

template <Order order>
void BM_Batch(benchmark::State &state)
{
    const size_t n = static_cast<size_t>(state.range(0));
    const size_t size = static_cast<size_t>(state.range(1));
    std::vector<void *> ptrs(n);
    std::vector<uint32_t> perm(n);
    for (size_t i = 0; i < n; i++)
        perm[i] = static_cast<uint32_t>(i);
    Rng rng(42);
    for (size_t i = n; i > 1; i--)
        std::swap(perm[i - 1], perm[rng.next() % i]);

    for (auto _ : state) {
        for (size_t i = 0; i < n; i++) {
            ptrs[i] = malloc(size);
            benchmark::DoNotOptimize(ptrs[i]);
        }
        if (order == Order::LIFO) {
            for (size_t i = n; i-- > 0;)
                free(ptrs[i]);
        } else if (order == Order::FIFO) {
            for (size_t i = 0; i < n; i++)
                free(ptrs[i]);
        } else {
            for (size_t i = 0; i < n; i++)
                free(ptrs[perm[i]]);
        }
    }
    state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(n));
}
#define BATCH_ARGS                                                                         \
    ArgNames({"n", "size"})                                                                \
        ->Args({100, 64})->Args({1000, 64})->Args({10000, 64})->Args({1000, 1024})         \
        ->Args({10000, 16})->Args({1000, 8192})
BENCHMARK_TEMPLATE(BM_Batch, Order::LIFO)->Name("BM_BatchLIFO")->BATCH_ARGS;
BENCHMARK_TEMPLATE(BM_Batch, Order::FIFO)->Name("BM_BatchFIFO")->BATCH_ARGS;
BENCHMARK_TEMPLATE(BM_Batch, Order::Random)->Name("BM_BatchRandom")->BATCH_ARGS;

void BM_Calloc(benchmark::State &state)
{
    const size_t size = static_cast<size_t>(state.range(0));
    for (auto _ : state) {
        void *p = calloc(1, size);
        benchmark::DoNotOptimize(p);
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
    state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(size));
}
BENCHMARK(BM_Calloc)->ArgName("size")->Arg(16)->Arg(256)->Arg(4096)->Arg(65536)->Arg(1 << 20);

// Growth by doubling: 16, 32, ... final (one realloc per step).
void BM_ReallocDouble(benchmark::State &state)
{
    const size_t final_size = static_cast<size_t>(state.range(0));
    int64_t steps = 0;
    for (auto _ : state) {
        size_t size = 16;
        void *p = malloc(size);
        touch(p, size);
        while (size < final_size) {
            size *= 2;
            p = realloc(p, size);
            touch(p, size);
            steps++;
        }
        free(p);
    }
    state.SetItemsProcessed(steps);
}
BENCHMARK(BM_ReallocDouble)->ArgName("final")->Arg(4096)->Arg(1 << 20);

// Growth by appending 64 bytes at a time (a string or vector grown without
// any amortisation of its own).
void BM_ReallocAppend(benchmark::State &state)
{
    const size_t final_size = static_cast<size_t>(state.range(0));
    int64_t steps = 0;
    for (auto _ : state) {
        size_t size = 64;
        void *p = malloc(size);
        touch(p, size);
        while (size < final_size) {
            size += 64;
            p = realloc(p, size);
            touch(p, size);
            steps++;
        }
        free(p);
    }
    state.SetItemsProcessed(steps);
}
BENCHMARK(BM_ReallocAppend)->ArgName("final")->Arg(4096)->Arg(65536);

void BM_PosixMemalign(benchmark::State &state)
{
    const size_t align = static_cast<size_t>(state.range(0));
    const size_t size = static_cast<size_t>(state.range(1));
    for (auto _ : state) {
        void *p = nullptr;
        if (posix_memalign(&p, align, size) != 0 || (reinterpret_cast<uintptr_t>(p) & (align - 1))) {
            state.SkipWithError("posix_memalign failed or misaligned");
            break;
        }
        benchmark::DoNotOptimize(p);
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PosixMemalign)
    ->ArgNames({"align", "size"})
    ->Args({16, 64})->Args({64, 64})->Args({64, 1000})->Args({4096, 64})->Args({4096, 4096})
    ->Args({65536, 65536});

void BM_AlignedAlloc(benchmark::State &state)
{
    const size_t align = static_cast<size_t>(state.range(0));
    const size_t size = static_cast<size_t>(state.range(1));  // a multiple of align (C11)
    for (auto _ : state) {
        void *p = aligned_alloc(align, size);
        if (p == nullptr || (reinterpret_cast<uintptr_t>(p) & (align - 1))) {
            state.SkipWithError("aligned_alloc failed or misaligned");
            break;
        }
        benchmark::DoNotOptimize(p);
        free(p);
    }
    state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_AlignedAlloc)
    ->ArgNames({"align", "size"})
    ->Args({16, 64})->Args({64, 64})->Args({64, 1024})->Args({4096, 4096})->Args({65536, 65536});

// ---------------------------------------------------------------------------
// The persistent thread pool.
//
// Google Benchmark's ->Threads(n) starts fresh threads for every run, so a
// thread's first allocations (thread-cache creation, arena assignment) would
// be part of every measurement.  The pool's workers are created once, on
// first use, and live until the process exits; a run wakes workers 0..n-1,
// each runs the job, and the run's time goes from just before the first
// worker is woken to the moment the last one finishes (taken by that
// worker).  So the figure includes waking the workers (one condition
// variable signal each) and, with more threads than processing units,
// the scheduling of the threads over the processing units; it excludes
// thread creation and the main thread's own wake-up.  Reported with
// UseManualTime().

class Pool {
public:
    static Pool &get()
    {
        static Pool *pool = new Pool;  // never destroyed: workers block at exit
        return *pool;
    }

    // Runs job(i) on workers 0..n-1; returns the elapsed seconds.
    double run(unsigned n, const std::function<void(unsigned)> &job)
    {
        while (workers_.size() < n)
            spawn();
        job_ = &job;
        pending_.store(n, std::memory_order_relaxed);
        {
            std::lock_guard<std::mutex> g(done_mutex_);
            done_ = false;
        }
        auto start = std::chrono::steady_clock::now();
        for (unsigned i = 0; i < n; i++) {
            Worker &w = *workers_[i];
            {
                std::lock_guard<std::mutex> g(w.mutex);
                w.go = true;
            }
            w.cv.notify_one();
        }
        std::unique_lock<std::mutex> lock(done_mutex_);
        done_cv_.wait(lock, [this] { return done_; });
        return std::chrono::duration<double>(end_ - start).count();
    }

private:
    struct Worker {
        std::mutex mutex;
        std::condition_variable cv;
        bool go = false;
        std::thread thread;
    };

    void spawn()
    {
        unsigned id = static_cast<unsigned>(workers_.size());
        workers_.push_back(std::make_unique<Worker>());
        Worker *w = workers_.back().get();
        w->thread = std::thread([this, w, id] { loop(*w, id); });
        w->thread.detach();
    }

    void loop(Worker &w, unsigned id)
    {
        if (g_pin)
            brisk_pin_thread(id);
        for (;;) {
            {
                std::unique_lock<std::mutex> lock(w.mutex);
                w.cv.wait(lock, [&w] { return w.go; });
                w.go = false;
            }
            (*job_)(id);
            if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
                end_ = std::chrono::steady_clock::now();
                std::lock_guard<std::mutex> g(done_mutex_);
                done_ = true;
                done_cv_.notify_one();
            }
        }
    }

    std::vector<std::unique_ptr<Worker>> workers_;
    const std::function<void(unsigned)> *job_ = nullptr;
    std::atomic<unsigned> pending_{0};
    std::chrono::steady_clock::time_point end_;
    std::mutex done_mutex_;
    std::condition_variable done_cv_;
    bool done_ = false;
};

// ---------------------------------------------------------------------------
// Thread-count sweep: each of `threads` workers does kSweepOps random
// operations on a private table of kSweepSlots blocks (free the slot's block
// if any, allocate a new one of 16..2056 bytes and touch it), then frees
// what is left.  Fixed work per thread: ideal scaling keeps the time flat up
// to the number of processing units.

constexpr unsigned kSweepSlots = 512;
constexpr unsigned kSweepOps = 20000;

void BM_ThreadSweep(benchmark::State &state)
{
    const unsigned threads = static_cast<unsigned>(state.range(0));
    std::vector<std::vector<void *>> slots(threads, std::vector<void *>(kSweepSlots, nullptr));
    uint64_t round = 0;
    std::function<void(unsigned)> job = [&](unsigned id) {
        Rng rng(round * 1000 + id);
        void **s = slots[id].data();
        for (unsigned i = 0; i < kSweepOps; i++) {
            uint64_t r = rng.next();
            unsigned k = static_cast<unsigned>(r % kSweepSlots);
            free(s[k]);
            size_t size = 16 + (((r >> 32) & 0xff) << ((r >> 16) & 3));
            s[k] = malloc(size);
            touch(s[k], size);
        }
        for (unsigned k = 0; k < kSweepSlots; k++) {
            free(s[k]);
            s[k] = nullptr;
        }
    };
    Pool &pool = Pool::get();
    for (auto _ : state) {
        round++;
        state.SetIterationTime(pool.run(threads, job));
    }
    state.SetItemsProcessed(state.iterations() * threads * kSweepOps);
    state.counters["threads"] = threads;
}
BENCHMARK(BM_ThreadSweep)
    ->ArgName("threads")
    ->Arg(1)->Arg(2)->Arg(4)->Arg(8)->Arg(16)->Arg(32)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// ---------------------------------------------------------------------------
// Cross-thread frees: `pairs` producer/consumer pairs (workers 2k and
// 2k+1).  The producer allocates kTransfer blocks and passes them through a
// single-producer single-consumer ring; the consumer frees them.  Waiting on
// a full or empty ring spins briefly, then yields the processor.  Items =
// blocks.

constexpr unsigned kTransfer = 20000;
constexpr unsigned kRing = 1024;

// Waiting on the ring: a short spin (the other side is usually running on
// another processing unit), then yield (it may be waiting for ours).
inline void ring_wait(unsigned &spins)
{
    if (++spins < 64) {
#if defined(__x86_64__) || defined(__i386__)
        __builtin_ia32_pause();
#endif
    } else {
        std::this_thread::yield();
    }
}

struct alignas(64) Ring {
    std::atomic<uint64_t> head{0};  // consumer's position
    char pad1[64 - sizeof(std::atomic<uint64_t>)];
    std::atomic<uint64_t> tail{0};  // producer's position
    char pad2[64 - sizeof(std::atomic<uint64_t>)];
    void *slot[kRing];
};

void BM_ProducerConsumer(benchmark::State &state)
{
    const unsigned pairs = static_cast<unsigned>(state.range(0));
    const size_t size = static_cast<size_t>(state.range(1));
    std::unique_ptr<Ring[]> rings(new Ring[pairs]);
    std::function<void(unsigned)> job = [&](unsigned id) {
        Ring &ring = rings[id / 2];
        if (id % 2 == 0) {
            uint64_t tail = ring.tail.load(std::memory_order_relaxed);
            for (unsigned i = 0; i < kTransfer; i++, tail++) {
                void *p = malloc(size);
                touch(p, size);
                for (unsigned spins = 0;
                     tail - ring.head.load(std::memory_order_acquire) >= kRing;)
                    ring_wait(spins);
                ring.slot[tail % kRing] = p;
                ring.tail.store(tail + 1, std::memory_order_release);
            }
        } else {
            uint64_t head = ring.head.load(std::memory_order_relaxed);
            for (unsigned i = 0; i < kTransfer; i++, head++) {
                for (unsigned spins = 0; ring.tail.load(std::memory_order_acquire) == head;)
                    ring_wait(spins);
                free(ring.slot[head % kRing]);
                ring.head.store(head + 1, std::memory_order_release);
            }
        }
    };
    Pool &pool = Pool::get();
    for (auto _ : state)
        state.SetIterationTime(pool.run(2 * pairs, job));
    state.SetItemsProcessed(state.iterations() * pairs * kTransfer);
}
BENCHMARK(BM_ProducerConsumer)
    ->ArgNames({"pairs", "size"})
    ->Args({1, 64})->Args({1, 4096})->Args({2, 64})->Args({4, 64})
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

int main(int argc, char **argv)
{
    // Take our own flag out before Google Benchmark sees the rest.
    int kept = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--pin") == 0)
            g_pin = true;
        else
            argv[kept++] = argv[i];
    }
    argc = kept;
    argv[argc] = nullptr;

    benchmark::Initialize(&argc, argv);
    if (benchmark::ReportUnrecognizedArguments(argc, argv))
        return 1;

    std::string library = allocator_library();
    benchmark::AddCustomContext("allocator", allocator_name(library));
    benchmark::AddCustomContext("allocator_library", library);
    if (g_pin) {
        int pus = brisk_pin_init();
        benchmark::AddCustomContext("pinned", "round-robin over " + std::to_string(pus) + " PUs");
    } else {
        benchmark::AddCustomContext("pinned", "no");
    }
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
