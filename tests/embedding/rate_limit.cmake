# Tests of RateLimitedEmbedder (manual clock; one test with threads on the real clock).
pagekeeper_add_test(rate_limited_embedder_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/rate_limited_embedder_test.cpp LABELS concurrent)
