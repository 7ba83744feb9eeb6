# tier_bench.cpp starts its own redis-server with the tests' helper (tests/tiers).
target_include_directories(pagekeeper_bench PRIVATE ${PROJECT_SOURCE_DIR}/tests)
target_link_libraries(pagekeeper_bench PRIVATE PkgConfig::HIREDIS)
