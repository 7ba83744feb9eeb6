# A per-model limit on embedder calls per second that queues rather than fails.
target_sources(pagekeeper_embedding PRIVATE ${CMAKE_CURRENT_LIST_DIR}/rate_limited_embedder.cpp)
