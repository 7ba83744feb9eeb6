# llama.cpp backend of the embedder (LlamaEmbedder) and the shared llama.cpp runtime wrapper.
#
# PAGEKEEPER_LLAMA: AUTO (default) builds the backend when FindLlama finds llama.cpp and
# otherwise builds a library whose llama.cpp backend reports itself unavailable; ON makes a
# missing llama.cpp a configuration error (CI uses it so the llama tests cannot silently
# skip); OFF never looks for it.
set(PAGEKEEPER_LLAMA AUTO CACHE STRING "llama.cpp backend: AUTO, ON or OFF")
set_property(CACHE PAGEKEEPER_LLAMA PROPERTY STRINGS AUTO ON OFF)

if(NOT PAGEKEEPER_LLAMA STREQUAL "OFF")
  list(APPEND CMAKE_MODULE_PATH ${PROJECT_SOURCE_DIR}/cmake)
  list(REMOVE_DUPLICATES CMAKE_MODULE_PATH)
  if(PAGEKEEPER_LLAMA STREQUAL "ON")
    find_package(Llama REQUIRED)
  else()
    find_package(Llama)
  endif()
endif()

target_sources(pagekeeper PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/llama_runtime.cpp
  ${CMAKE_CURRENT_LIST_DIR}/llama_embedder.cpp
  ${CMAKE_CURRENT_LIST_DIR}/llama_model_pool.cpp)
if(TARGET Llama::llama)
  message(STATUS "pagekeeper: llama.cpp backend ON (${Llama_LIBRARY})")
  target_compile_definitions(pagekeeper PUBLIC PAGEKEEPER_HAVE_LLAMA=1)
  target_link_libraries(pagekeeper PRIVATE Llama::llama ${CMAKE_DL_LIBS})
  # The WordPiece vocabulary (with its 46 reference tokenizations) that tests and benchmarks
  # build their generated models from; scripts/fetch-llama.sh puts it in third_party/llama.
  find_file(PAGEKEEPER_LLAMA_VOCAB ggml-vocab-bert-bge.gguf
    HINTS ${LLAMA_ROOT}/models ${LLAMA_ROOT}/share/llama/models
          ${PROJECT_SOURCE_DIR}/third_party/llama/models
    NO_DEFAULT_PATH)
else()
  message(STATUS "pagekeeper: llama.cpp backend OFF (run scripts/fetch-llama.sh or set LLAMA_ROOT)")
endif()
