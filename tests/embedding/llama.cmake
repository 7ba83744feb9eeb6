# Tests of the llama.cpp backend (LlamaEmbedder, LlamaModel, LlamaLoraAdapter). They generate
# their models at run time with pagekeeper-gguf-gen from the real WordPiece vocabulary that
# scripts/fetch-llama.sh puts beside the libraries. Built in every configuration: without
# llama.cpp they check that the backend reports itself unavailable and skip the rest.
set(_llama_test_defs)
set(_llama_test_libs)
if(TARGET Llama::llama)
  # PAGEKEEPER_LLAMA_VOCAB is found in src/embedding/llama.cmake.
  if(NOT PAGEKEEPER_LLAMA_VOCAB)
    message(FATAL_ERROR "llama.cpp was found but models/ggml-vocab-bert-bge.gguf was not: run "
                        "scripts/fetch-llama.sh or set PAGEKEEPER_LLAMA_VOCAB")
  endif()
  list(APPEND _llama_test_defs
    PAGEKEEPER_GGUF_GEN="$<TARGET_FILE:pagekeeper-gguf-gen>"
    PAGEKEEPER_LLAMA_VOCAB="${PAGEKEEPER_LLAMA_VOCAB}")
  list(APPEND _llama_test_libs Llama::ggml-base)
endif()

# name -> ctest labels (`concurrent`: also run under TSan).
set(_llama_tests
  llama_embedder_test ""
  llama_runtime_test ""
  llama_model_pool_test concurrent
  llama_embedder_concurrent_test concurrent)
while(_llama_tests)
  list(POP_FRONT _llama_tests _name _labels)
  pagekeeper_add_test(${_name}
    SOURCES ${CMAKE_CURRENT_LIST_DIR}/${_name}.cpp LABELS ${_labels} LIBS ${_llama_test_libs})
  target_compile_definitions(${_name} PRIVATE ${_llama_test_defs})
  if(TARGET pagekeeper-gguf-gen)
    add_dependencies(${_name} pagekeeper-gguf-gen)
  endif()
endwhile()
