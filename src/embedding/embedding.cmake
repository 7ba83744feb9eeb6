# Embedding cache, content hash, model registry and the non-llama.cpp embedders (lexical,
# OpenAI-compatible HTTP). The llama.cpp backend has its own fragment (llama.cmake).

# cpp-httplib: Debian ships it as a compiled library with a pkg-config file whose flags
# (CPPHTTPLIB_OPENSSL_SUPPORT ...) must match the library's build; GLOBAL so the server and
# the tests (a real loopback server) use the same target.
if(NOT TARGET PkgConfig::HTTPLIB)
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
endif()

target_sources(pagekeeper PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/content_hash.cpp
  ${CMAKE_CURRENT_LIST_DIR}/lexical_embedder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/model_registry.cpp
  ${CMAKE_CURRENT_LIST_DIR}/openai_embedder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/embedding_service.cpp
  ${CMAKE_CURRENT_LIST_DIR}/vector_slab.cpp)
# Lexical vectors must be bit-identical on every platform: forbid fused multiply-add.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/lexical_embedder.cpp
  PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
target_link_libraries(pagekeeper PRIVATE PkgConfig::HTTPLIB)
