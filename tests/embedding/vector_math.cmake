# Tests of the similarity arithmetic (vector_math.hpp).
pagekeeper_add_test(vector_math_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vector_math_test.cpp)
