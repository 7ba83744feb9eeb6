# llama_bench.cpp generates its MiniLM-shaped model with pagekeeper-gguf-gen at start-up.
if(TARGET pagekeeper-gguf-gen AND PAGEKEEPER_LLAMA_VOCAB)
  target_compile_definitions(pagekeeper_bench PRIVATE
    PAGEKEEPER_GGUF_GEN="$<TARGET_FILE:pagekeeper-gguf-gen>"
    PAGEKEEPER_LLAMA_VOCAB="${PAGEKEEPER_LLAMA_VOCAB}")
  add_dependencies(pagekeeper_bench pagekeeper-gguf-gen)
endif()
