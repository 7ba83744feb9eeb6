// Must compile under clang -Werror=thread-safety: every access to the guarded members holds
// their Mutex (MutexLock, a CondVar wait, a REQUIRES helper). The companion of
// unguarded_access.cpp, so that one fails for the missing lock and nothing else.
#include <chrono>

#include "pagekeeper/detail/mutex.hpp"

namespace {

class Counter {
 public:
  void add(int n) PAGEKEEPER_EXCLUDES(mutex_) {
    pagekeeper::MutexLock lock(mutex_);
    add_locked(n);
    changed_.notify_all();
  }
  bool wait_for_at_least(int n) PAGEKEEPER_EXCLUDES(mutex_) {
    pagekeeper::MutexLock lock(mutex_);
    return changed_.wait_for(lock, std::chrono::milliseconds(1), [&] {
      mutex_.assert_held();
      return value_ >= n;
    });
  }
  int read() const PAGEKEEPER_EXCLUDES(mutex_) {
    pagekeeper::MutexLock lock(mutex_);
    return value_;
  }

 private:
  void add_locked(int n) PAGEKEEPER_REQUIRES(mutex_) { value_ += n; }

  mutable pagekeeper::Mutex mutex_;
  pagekeeper::CondVar changed_;
  int value_ PAGEKEEPER_GUARDED_BY(mutex_) = 0;
};

}  // namespace

int main() {
  Counter c;
  c.add(1);
  return c.wait_for_at_least(1) && c.read() == 1 ? 0 : 1;
}
