# The llama.cpp embedder (LlamaEmbedder), over the llama component's runtime (src/llama).
target_sources(pagekeeper_embedding PRIVATE ${CMAKE_CURRENT_LIST_DIR}/llama_embedder.cpp)
if(TARGET Llama::llama)
  target_link_libraries(pagekeeper_embedding PRIVATE Llama::llama)
endif()
