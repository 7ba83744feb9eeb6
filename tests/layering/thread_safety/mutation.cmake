# Removes one lock from a copy of a pool header and compiles pool_access.cpp against the
# copy with clang's -Werror=thread-safety: the compile must fail with the analysis's message
# for that lock. Shows that the annotations on the pool's own locks are live (pool_access.cpp
# compiles against the real headers: thread_safety.pool_access).
#
#   cmake -DMUTATION=<name> -DSOURCE_DIR=<repo> -DWORK_DIR=<scratch> -DCLANGXX=<clang++>
#         -P mutation.cmake
# Exits non-zero when the lock's text is no longer in the header (update the table below),
# when the copy compiles, or when it fails for another reason.
cmake_minimum_required(VERSION 3.20)

set(_header pagekeeper/pool.hpp)
if(MUTATION STREQUAL "pool_contains_unlocked")
  # contains() probes the table without the shard's lock.
  set(_old "      ReaderMutexLock lock(s.mutex);\n      return s.table.find(h, key, key_equal) != nullptr;")
  set(_new "      return s.table.find(h, key, key_equal) != nullptr;")
  set(_expect "reading variable 'table' requires holding mutex 's.mutex'")
elseif(MUTATION STREQUAL "pool_erase_unlocked")
  # erase() detaches an entry without the shard's lock.
  set(_old "      ShardLock lock(*this, s);\n      Entry* e = s.table.find(h, key, key_equal);\n      if (e == nullptr) return false;")
  set(_new "      Entry* e = s.table.find(h, key, key_equal);\n      if (e == nullptr) return false;")
  set(_expect "calling function 'detach_newest' requires holding mutex 's.mutex' exclusively")
elseif(MUTATION STREQUAL "pool_unpin_frees_under_shared_lock")
  # The last unpin of a detached entry frees it holding the shard's lock only shared.
  set(_old "      WriterMutexLock lock(s.mutex);\n      destroy(s, e);")
  set(_new "      ReaderMutexLock lock(s.mutex);\n      destroy(s, e);")
  set(_expect "calling function 'destroy' requires holding mutex 's.mutex' exclusively")
elseif(MUTATION STREQUAL "pool_load_cost_unlocked")
  # load_cost() copies the moving averages without their mutex.
  set(_old "      MutexLock lock(load_cost_mutex);\n      return load_cost_;")
  set(_new "      return load_cost_;")
  set(_expect "reading variable 'load_cost_' requires holding mutex 'load_cost_mutex'")
elseif(MUTATION STREQUAL "flight_set_value_unlocked")
  # Flight::set_value() publishes the value without the flight's mutex.
  set(_header pagekeeper/detail/single_flight.hpp)
  set(_old "      MutexLock lock(mutex);\n      value.emplace(v);")
  set(_new "      value.emplace(v);")
  set(_expect "writing variable 'done' requires holding mutex 'mutex' exclusively")
else()
  message(FATAL_ERROR "mutation.cmake: unknown MUTATION '${MUTATION}'")
endif()

file(READ "${SOURCE_DIR}/include/${_header}" _text)
string(REPLACE "${_old}" "${_new}" _mutated "${_text}")
if(_mutated STREQUAL _text)
  message(FATAL_ERROR "mutation ${MUTATION}: the lock's text is no longer in ${_header}; "
                      "update tests/layering/thread_safety/mutation.cmake")
endif()
set(_copy "${WORK_DIR}/${MUTATION}")
file(REMOVE_RECURSE "${_copy}")
file(WRITE "${_copy}/${_header}" "${_mutated}")

execute_process(
  COMMAND "${CLANGXX}" -std=c++20 -fsyntax-only -Wthread-safety -Werror=thread-safety
          "-I${_copy}" "-I${SOURCE_DIR}/include"
          "${SOURCE_DIR}/tests/layering/thread_safety/pool_access.cpp"
  RESULT_VARIABLE _status
  OUTPUT_VARIABLE _out
  ERROR_VARIABLE _out)
if(_status EQUAL 0)
  message(FATAL_ERROR "mutation ${MUTATION}: compiled without the lock; the analysis missed it")
endif()
string(FIND "${_out}" "${_expect}" _at)
if(_at EQUAL -1)
  message(FATAL_ERROR "mutation ${MUTATION}: failed, but not with \"${_expect}\":\n${_out}")
endif()
message(STATUS "mutation ${MUTATION}: rejected as expected (${_expect})")
