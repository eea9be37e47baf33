# Test registration. Labels say what a test needs: unit, integration, fault, fuzz,
# postgres, kafka, nats. `ctest -L unit` runs one kind.

# Unit tests: tests/unit/test_<name>.c, one process each.
file(GLOB SLUICE_UNIT_TESTS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/unit/test_*.c)
foreach(src ${SLUICE_UNIT_TESTS})
  get_filename_component(name ${src} NAME_WE)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src ${PROJECT_SOURCE_DIR}/tests/unit)
  target_link_libraries(${name} PRIVATE sluice_core)
  add_test(NAME unit/${name} COMMAND ${name})
  set_tests_properties(unit/${name} PROPERTIES LABELS unit TIMEOUT 300
    ENVIRONMENT "SLUICE_SRC=${PROJECT_SOURCE_DIR}")
endforeach()
# test_wal again with the write-ahead log's portable CRC table instead of the SSE4.2
# instruction (both must give the same checksums).
add_test(NAME unit/test_wal_crc_table COMMAND test_wal)
set_tests_properties(unit/test_wal_crc_table PROPERTIES LABELS unit TIMEOUT 300
  ENVIRONMENT "SLUICE_WAL_CRC_TABLE=1;SLUICE_SRC=${PROJECT_SOURCE_DIR}")

# Fuzz targets: tests/fuzz/fuzz_<name>.c define LLVMFuzzerTestOneInput. Without
# SLUICE_FUZZ they are linked with a small driver that replays the checked-in corpus
# (tests/fuzz/corpus/<name>/) plus generated mutations, so every build exercises them.
file(GLOB SLUICE_FUZZ_TARGETS CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/fuzz/fuzz_*.c)
foreach(src ${SLUICE_FUZZ_TARGETS})
  get_filename_component(name ${src} NAME_WE)
  string(REGEX REPLACE "^fuzz_" "" short ${name})
  if(SLUICE_FUZZ)
    add_executable(${name} ${src})
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
  else()
    add_executable(${name} ${src} ${PROJECT_SOURCE_DIR}/tests/fuzz/driver.c)
    add_test(NAME fuzz/${short} COMMAND ${name} ${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${short})
    set_tests_properties(fuzz/${short} PROPERTIES LABELS fuzz TIMEOUT 300)
  endif()
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/src)
  target_link_libraries(${name} PRIVATE sluice_core)
endforeach()
if(SLUICE_FUZZ)
  # Coverage feedback from the library itself, not only from the targets' own code.
  target_compile_options(sluice_core PRIVATE -fsanitize=fuzzer-no-link)
else()
  # The same targets under libFuzzer for real: a clang build of their own (in the build
  # tree's libfuzzer/ directory) and SLUICE_FUZZ_SECONDS (default 15) per target over a
  # copy of the corpus; any crash fails. Skipped (exit 77) without clang's libFuzzer.
  add_test(NAME fuzz/libfuzzer
    COMMAND bash ${PROJECT_SOURCE_DIR}/tests/fuzz/libfuzzer.sh ${PROJECT_SOURCE_DIR}
      ${PROJECT_BINARY_DIR}/libfuzzer)
  set_tests_properties(fuzz/libfuzzer PROPERTIES LABELS fuzz TIMEOUT 900 SKIP_RETURN_CODE 77)
endif()

# Integration and fault tests: scripts that drive the real binary.
foreach(kind integration fault)
  file(GLOB scripts CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tests/${kind}/test_*.sh)
  foreach(script ${scripts})
    get_filename_component(name ${script} NAME_WE)
    add_test(NAME ${kind}/${name} COMMAND bash ${script})
    set_tests_properties(${kind}/${name} PROPERTIES LABELS ${kind} TIMEOUT 900
      ENVIRONMENT "SLUICE=$<TARGET_FILE:sluice>;SLUICE_SRC=${PROJECT_SOURCE_DIR};SLUICE_BUILD=${PROJECT_BINARY_DIR};SLUICE_TOOLS=${PROJECT_BINARY_DIR}")
  endforeach()
endforeach()
