// pagekeeper/detail/mutex.hpp
//
// Clang's thread-safety annotations and an annotated mutex, as LevelDB's port::Mutex and
// Abseil's Mutex do. Declaring `Mutex mu_;` and `int count_ PAGEKEEPER_GUARDED_BY(mu_);`
// lets clang's -Wthread-safety prove at compile time that every access to count_ holds mu_
// (CI builds the library with clang and -Werror=thread-safety). On other compilers the
// macros expand to nothing and Mutex is a plain std::mutex.
//
// The locking rule of the code base: a member shared between threads is either atomic, or
// immutable after construction, or PAGEKEEPER_GUARDED_BY the Mutex that protects it; a
// function that expects a lock held says PAGEKEEPER_REQUIRES(mu_).
//
// Thread safety: Mutex and SharedMutex are mutexes; the lock objects are used by one thread.

#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <shared_mutex>
#include <utility>

#if defined(__clang__)
#define PAGEKEEPER_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define PAGEKEEPER_THREAD_ANNOTATION(x)
#endif

#define PAGEKEEPER_CAPABILITY(x) PAGEKEEPER_THREAD_ANNOTATION(capability(x))
#define PAGEKEEPER_SCOPED_CAPABILITY PAGEKEEPER_THREAD_ANNOTATION(scoped_lockable)
#define PAGEKEEPER_GUARDED_BY(x) PAGEKEEPER_THREAD_ANNOTATION(guarded_by(x))
#define PAGEKEEPER_PT_GUARDED_BY(x) PAGEKEEPER_THREAD_ANNOTATION(pt_guarded_by(x))
#define PAGEKEEPER_REQUIRES(...) PAGEKEEPER_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define PAGEKEEPER_EXCLUDES(...) PAGEKEEPER_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define PAGEKEEPER_ACQUIRE(...) PAGEKEEPER_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define PAGEKEEPER_RELEASE(...) PAGEKEEPER_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define PAGEKEEPER_REQUIRES_SHARED(...) \
  PAGEKEEPER_THREAD_ANNOTATION(requires_shared_capability(__VA_ARGS__))
#define PAGEKEEPER_ACQUIRE_SHARED(...) \
  PAGEKEEPER_THREAD_ANNOTATION(acquire_shared_capability(__VA_ARGS__))
#define PAGEKEEPER_RELEASE_SHARED(...) \
  PAGEKEEPER_THREAD_ANNOTATION(release_shared_capability(__VA_ARGS__))
#define PAGEKEEPER_RELEASE_GENERIC(...) \
  PAGEKEEPER_THREAD_ANNOTATION(release_generic_capability(__VA_ARGS__))
#define PAGEKEEPER_TRY_ACQUIRE(...) PAGEKEEPER_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define PAGEKEEPER_TRY_ACQUIRE_SHARED(...) \
  PAGEKEEPER_THREAD_ANNOTATION(try_acquire_shared_capability(__VA_ARGS__))
#define PAGEKEEPER_ASSERT_CAPABILITY(x) PAGEKEEPER_THREAD_ANNOTATION(assert_capability(x))
#define PAGEKEEPER_ASSERT_SHARED_CAPABILITY(x) \
  PAGEKEEPER_THREAD_ANNOTATION(assert_shared_capability(x))
#define PAGEKEEPER_RETURN_CAPABILITY(x) PAGEKEEPER_THREAD_ANNOTATION(lock_returned(x))
#define PAGEKEEPER_NO_THREAD_SAFETY_ANALYSIS PAGEKEEPER_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace pagekeeper {

// A std::mutex clang's analysis knows as a capability. CondVar waits on the std::mutex
// inside (native()), with a plain std::condition_variable.
class PAGEKEEPER_CAPABILITY("mutex") Mutex {
 public:
  Mutex() = default;
  Mutex(const Mutex&) = delete;
  Mutex& operator=(const Mutex&) = delete;

  void lock() PAGEKEEPER_ACQUIRE() { mu_.lock(); }
  void unlock() PAGEKEEPER_RELEASE() { mu_.unlock(); }
  bool try_lock() PAGEKEEPER_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  // Tells the analysis that the caller holds this mutex (where it cannot see the lock).
  void assert_held() const PAGEKEEPER_ASSERT_CAPABILITY(this) {}

  // The std::mutex itself, for CondVar. Locking it directly bypasses the analysis.
  std::mutex& native() noexcept { return mu_; }

 private:
  std::mutex mu_;
};

// Holds `mu` from construction to destruction (or between unlock() and lock()).
class PAGEKEEPER_SCOPED_CAPABILITY MutexLock {
 public:
  explicit MutexLock(Mutex& mu) PAGEKEEPER_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~MutexLock() PAGEKEEPER_RELEASE() {
    if (held_) mu_.unlock();
  }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

  // Lets go early (a section that must run unlocked), and takes it back.
  void unlock() PAGEKEEPER_RELEASE() {
    mu_.unlock();
    held_ = false;
  }
  void lock() PAGEKEEPER_ACQUIRE() {
    mu_.lock();
    held_ = true;
  }

  Mutex& mutex() const { return mu_; }

 private:
  Mutex& mu_;
  bool held_ = true;
};

// A std::shared_mutex clang's analysis knows as a capability: held exclusively by writers
// (WriterMutexLock), shared by readers (ReaderMutexLock).
class PAGEKEEPER_CAPABILITY("mutex") SharedMutex {
 public:
  SharedMutex() = default;
  SharedMutex(const SharedMutex&) = delete;
  SharedMutex& operator=(const SharedMutex&) = delete;

  void lock() PAGEKEEPER_ACQUIRE() { mu_.lock(); }
  void unlock() PAGEKEEPER_RELEASE() { mu_.unlock(); }
  void lock_shared() PAGEKEEPER_ACQUIRE_SHARED() { mu_.lock_shared(); }
  void unlock_shared() PAGEKEEPER_RELEASE_SHARED() { mu_.unlock_shared(); }
  bool try_lock() PAGEKEEPER_TRY_ACQUIRE(true) { return mu_.try_lock(); }
  bool try_lock_shared() PAGEKEEPER_TRY_ACQUIRE_SHARED(true) { return mu_.try_lock_shared(); }
  // Tell the analysis that the caller holds this mutex exclusively, or at least shared
  // (where it cannot see the lock: a lambda run under it, locks held in a container).
  void assert_held() const PAGEKEEPER_ASSERT_CAPABILITY(this) {}
  void assert_held_shared() const PAGEKEEPER_ASSERT_SHARED_CAPABILITY(this) {}

 private:
  std::shared_mutex mu_;
};

// Holds `mu` exclusively from construction to destruction.
class PAGEKEEPER_SCOPED_CAPABILITY WriterMutexLock {
 public:
  explicit WriterMutexLock(SharedMutex& mu) PAGEKEEPER_ACQUIRE(mu) : mu_(mu) { mu_.lock(); }
  ~WriterMutexLock() PAGEKEEPER_RELEASE() { mu_.unlock(); }
  WriterMutexLock(const WriterMutexLock&) = delete;
  WriterMutexLock& operator=(const WriterMutexLock&) = delete;

 private:
  SharedMutex& mu_;
};

// Holds `mu` shared from construction to destruction.
class PAGEKEEPER_SCOPED_CAPABILITY ReaderMutexLock {
 public:
  explicit ReaderMutexLock(SharedMutex& mu) PAGEKEEPER_ACQUIRE_SHARED(mu) : mu_(mu) {
    mu_.lock_shared();
  }
  ~ReaderMutexLock() PAGEKEEPER_RELEASE_GENERIC() { mu_.unlock_shared(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  SharedMutex& mu_;
};

// A condition variable waited on with a held MutexLock. The analysis treats the mutex as
// held throughout a wait (it is, whenever the caller's code runs), so predicates may read
// members guarded by it. A std::condition_variable over the Mutex's native std::mutex:
// unlike std::condition_variable_any it allocates nothing at construction (libstdc++'s
// keeps a shared_ptr to an internal mutex) and takes no second mutex per wait.
class CondVar {
 public:
  void notify_one() noexcept { cv_.notify_one(); }
  void notify_all() noexcept { cv_.notify_all(); }

  void wait(MutexLock& lock) {
    Adopted native(lock);
    cv_.wait(native.lock);
  }
  template <class Predicate>
  void wait(MutexLock& lock, Predicate stop_waiting) {
    Adopted native(lock);
    cv_.wait(native.lock, std::move(stop_waiting));
  }
  // False when the deadline passed with the predicate still false.
  template <class Clock, class Duration, class Predicate>
  bool wait_until(MutexLock& lock, const std::chrono::time_point<Clock, Duration>& deadline,
                  Predicate stop_waiting) {
    Adopted native(lock);
    return cv_.wait_until(native.lock, deadline, std::move(stop_waiting));
  }
  template <class Rep, class Period, class Predicate>
  bool wait_for(MutexLock& lock, const std::chrono::duration<Rep, Period>& timeout,
                Predicate stop_waiting) {
    Adopted native(lock);
    return cv_.wait_for(native.lock, timeout, std::move(stop_waiting));
  }

 private:
  // The MutexLock's mutex as a std::unique_lock for the duration of one wait. It is handed
  // back still locked on every exit, a throwing predicate included (the wait relocks before
  // the predicate runs): the MutexLock stays its owner.
  struct Adopted {
    explicit Adopted(MutexLock& held) : lock(held.mutex().native(), std::adopt_lock) {}
    ~Adopted() { lock.release(); }
    Adopted(const Adopted&) = delete;
    Adopted& operator=(const Adopted&) = delete;
    std::unique_lock<std::mutex> lock;
  };

  std::condition_variable cv_;
};

}  // namespace pagekeeper
