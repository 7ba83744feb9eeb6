# Components as CMake targets, with layering the compiler enforces.
#
# Every component (core, broker, llama, embedding, adapter, server) is one library target
# pagekeeper_<name> with the alias pagekeeper::<name>. The public headers all live in
# include/pagekeeper/, but a component does not see that directory: at configure time each
# component gets its own include tree under <build>/layers/<name>/ holding links to the
# public headers it declares (include/pagekeeper/...) and to its private directory
# (src/<name>/, reached as "<name>/file.hpp"). A target sees the trees of the components it
# links, so an include that climbs the layers (the broker including an embedding header, the
# embedding reaching into the server's private headers) fails with "No such file" instead of
# compiling by accident. Installed consumers see one include/ directory.
#
#   pagekeeper_add_component(<name>
#     [HEADERS <path under include/pagekeeper>...]   (globs allowed: they take what no other
#                                                     component names explicitly)
#     [SOURCES <file>...]                             (none: an INTERFACE target)
#     [PUBLIC <target>...] [PRIVATE <target>...])
#
# pagekeeper_finish_components() (called once all components are added) fills the include
# trees and fails the configuration when a header of include/pagekeeper/ belongs to no
# component or to two: a new public header must be declared by its component.

include_guard(GLOBAL)

set(PAGEKEEPER_LAYERS_DIR ${PROJECT_BINARY_DIR}/layers)

# The include tree of private directory src/<name>: <build>/layers/<name>/src/<name> -> src/<name>.
# Returns the tree's root in <out_var>. Also used for src/cli, which is no library component.
function(pagekeeper_private_include_root name out_var)
  set(root ${PAGEKEEPER_LAYERS_DIR}/${name}/src)
  file(MAKE_DIRECTORY ${root})
  if(IS_SYMLINK ${root}/${name})
    file(REMOVE ${root}/${name})
  endif()
  if(EXISTS ${PROJECT_SOURCE_DIR}/src/${name})
    file(CREATE_LINK ${PROJECT_SOURCE_DIR}/src/${name} ${root}/${name} SYMBOLIC)
  endif()
  set(${out_var} ${root} PARENT_SCOPE)
endfunction()

function(pagekeeper_add_component name)
  cmake_parse_arguments(ARG "" "" "HEADERS;SOURCES;PUBLIC;PRIVATE" ${ARGN})
  set(target pagekeeper_${name})
  set(public_root ${PAGEKEEPER_LAYERS_DIR}/${name}/include)
  file(MAKE_DIRECTORY ${public_root})
  pagekeeper_private_include_root(${name} private_root)
  if(ARG_SOURCES)
    add_library(${target} ${ARG_SOURCES})
    set(scope PUBLIC)
    target_link_libraries(${target} PUBLIC ${ARG_PUBLIC} PRIVATE ${ARG_PRIVATE})
    set_target_properties(${target} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  else()
    add_library(${target} INTERFACE)
    set(scope INTERFACE)
    target_link_libraries(${target} INTERFACE ${ARG_PUBLIC})
  endif()
  # The private tree is part of the build interface: components above may use a lower
  # component's internal headers (the server uses the llama runtime's); nothing installs them.
  target_include_directories(${target} ${scope}
    $<BUILD_INTERFACE:${public_root}>
    $<BUILD_INTERFACE:${private_root}>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  set_target_properties(${target} PROPERTIES EXPORT_NAME ${name})
  add_library(pagekeeper::${name} ALIAS ${target})
  set_property(GLOBAL APPEND PROPERTY PAGEKEEPER_COMPONENTS_ADDED ${name})
  set_property(GLOBAL PROPERTY PAGEKEEPER_COMPONENT_HEADERS_${name} "${ARG_HEADERS}")
endfunction()

function(pagekeeper_finish_components)
  set(include_root ${PROJECT_SOURCE_DIR}/include/pagekeeper)
  get_property(components GLOBAL PROPERTY PAGEKEEPER_COMPONENTS_ADDED)
  # Explicit names first, so that a glob takes only what nobody named.
  set(claimed)
  foreach(name IN LISTS components)
    get_property(entries GLOBAL PROPERTY PAGEKEEPER_COMPONENT_HEADERS_${name})
    set(headers_${name})
    foreach(entry IN LISTS entries)
      if(NOT entry MATCHES "[*]")
        if(NOT EXISTS ${include_root}/${entry})
          message(FATAL_ERROR "component ${name} declares include/pagekeeper/${entry}, which does not exist")
        endif()
        if(entry IN_LIST claimed)
          message(FATAL_ERROR "include/pagekeeper/${entry} is declared by two components")
        endif()
        list(APPEND claimed ${entry})
        list(APPEND headers_${name} ${entry})
      endif()
    endforeach()
  endforeach()
  foreach(name IN LISTS components)
    get_property(entries GLOBAL PROPERTY PAGEKEEPER_COMPONENT_HEADERS_${name})
    foreach(entry IN LISTS entries)
      if(entry MATCHES "[*]")
        file(GLOB matches RELATIVE ${include_root} CONFIGURE_DEPENDS ${include_root}/${entry})
        foreach(match IN LISTS matches)
          if(NOT match IN_LIST claimed)
            list(APPEND claimed ${match})
            list(APPEND headers_${name} ${match})
          endif()
        endforeach()
      endif()
    endforeach()
    set_property(GLOBAL PROPERTY PAGEKEEPER_COMPONENT_HEADER_FILES_${name} "${headers_${name}}")
  endforeach()
  file(GLOB_RECURSE all_headers RELATIVE ${include_root} CONFIGURE_DEPENDS
       ${include_root}/*.hpp ${include_root}/*.h)
  foreach(header IN LISTS all_headers)
    if(NOT header IN_LIST claimed)
      message(FATAL_ERROR "include/pagekeeper/${header} belongs to no component: add it to the "
                          "HEADERS of its component's pagekeeper_add_component() in src/<component>/CMakeLists.txt")
    endif()
  endforeach()
  # Rebuild each component's public tree from scratch, so a header moved away disappears.
  foreach(name IN LISTS components)
    set(tree ${PAGEKEEPER_LAYERS_DIR}/${name}/include/pagekeeper)
    file(REMOVE_RECURSE ${tree})
    foreach(header IN LISTS headers_${name})
      get_filename_component(dir ${tree}/${header} DIRECTORY)
      file(MAKE_DIRECTORY ${dir})
      file(CREATE_LINK ${include_root}/${header} ${tree}/${header} SYMBOLIC)
    endforeach()
  endforeach()
endfunction()
