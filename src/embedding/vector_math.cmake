# Similarity arithmetic over embedding vectors (cosine, pairwise matrix, top-k, clusters).
target_sources(pagekeeper_embedding PRIVATE ${CMAKE_CURRENT_LIST_DIR}/vector_math.cpp)
