# Embedding cache, content hash, model registry, the non-llama.cpp embedders (lexical,
# OpenAI-compatible HTTP) and the byte form of vectors in the lower tiers (tier_record,
# embedding_tiers, over the tiers component's TierChain). The llama.cpp backend has its own fragment (llama.cmake).

# cpp-httplib: Debian ships it as a compiled library with a pkg-config file whose flags
# (CPPHTTPLIB_OPENSSL_SUPPORT ...) must match the library's build; GLOBAL so the server and
# the tests (a real loopback server) use the same target.
if(NOT TARGET PkgConfig::HTTPLIB)
  pkg_check_modules(HTTPLIB REQUIRED IMPORTED_TARGET GLOBAL cpp-httplib)
endif()

pagekeeper_add_component(embedding
  HEADERS embedder.hpp embedding_key.hpp embedding_service.hpp embedding_vector.hpp
          lexical_embedder.hpp llama_embedder.hpp model_registry.hpp openai_embedder.hpp
          detail/content_hash.hpp detail/vector_slab.hpp vector_math.hpp
          tier_record.hpp embedding_tiers.hpp rate_limited_embedder.hpp
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/content_hash.cpp
    ${CMAKE_CURRENT_LIST_DIR}/lexical_embedder.cpp
    ${CMAKE_CURRENT_LIST_DIR}/model_registry.cpp
    ${CMAKE_CURRENT_LIST_DIR}/openai_embedder.cpp
    ${CMAKE_CURRENT_LIST_DIR}/embedding_service.cpp
    ${CMAKE_CURRENT_LIST_DIR}/vector_slab.cpp
    ${CMAKE_CURRENT_LIST_DIR}/tier_record.cpp
    ${CMAKE_CURRENT_LIST_DIR}/embedding_tiers.cpp
  PUBLIC pagekeeper_core pagekeeper_tiers
  PRIVATE pagekeeper_llama OpenSSL::Crypto PkgConfig::XXHASH PkgConfig::HTTPLIB)
# Lexical vectors must be bit-identical on every platform: forbid fused multiply-add.
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/lexical_embedder.cpp
  PROPERTIES COMPILE_OPTIONS "-ffp-contract=off")
