# Tests of the embedding cache, content hash, registry and non-llama.cpp embedders.
pagekeeper_add_test(content_hash_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/content_hash_test.cpp)
pagekeeper_add_test(lexical_embedder_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/lexical_embedder_test.cpp LIBS PkgConfig::XXHASH)
pagekeeper_add_test(model_registry_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/model_registry_test.cpp)
pagekeeper_add_test(openai_embedder_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/openai_embedder_test.cpp LIBS PkgConfig::HTTPLIB)
pagekeeper_add_test(embedding_service_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/embedding_service_test.cpp)
pagekeeper_add_test(embedding_service_concurrency_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/embedding_service_concurrency_test.cpp LABELS concurrent)
pagekeeper_add_test(vector_slab_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/vector_slab_test.cpp LABELS concurrent)
pagekeeper_add_test(vector_slab_concurrency_test
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/vector_slab_concurrency_test.cpp LABELS concurrent)
pagekeeper_add_test(embedding_storage_test SOURCES ${CMAKE_CURRENT_LIST_DIR}/embedding_storage_test.cpp)
