// Must NOT compile under clang -Werror=thread-safety: it reads a member guarded by a Mutex
// without holding it (the check that the annotations are live).
#include "pagekeeper/detail/mutex.hpp"

namespace {

class Counter {
 public:
  int read_unlocked() const { return value_; }  // the mistake

 private:
  mutable pagekeeper::Mutex mutex_;
  int value_ PAGEKEEPER_GUARDED_BY(mutex_) = 0;
};

}  // namespace

int main() { return Counter{}.read_unlocked(); }
