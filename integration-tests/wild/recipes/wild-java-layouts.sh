# shellcheck shell=bash
# wild-java-layouts — issue 10, class 2 (Java archives laid out by other
# build tools): Spring Boot BOOT-INF/lib, WAR WEB-INF/lib, a shaded uber jar
# with several Maven descriptors, a Jenkins plugin named by its manifest.
# The libraries are Debian's own jars (real upstream pom.properties); the
# application classes are compiled here with javac. See lib/javalayouts.py.
build_wild_java_layouts() {
  local r=$W/wild-java.rootfs src=$W/wild-java.src base=$W/wild-java.base
  rm -rf "$r" "$src" "$base"
  debian_os_release "$base"
  mkdir -p "$r" "$src/java/com/example/demo" "$src/classes" "$src/debs"
  apt_update_once
  local p
  for p in libcommons-lang3-java libcommons-io-java libslf4j-java libjackson2-core-java libcommons-text-java; do
    ls "$CACHE/dl/${p}_"*.deb >/dev/null 2>&1 || (cd "$CACHE/dl" && apt-get download -qq "$p" 2>/dev/null)
    dpkg-deb -x "$(ls "$CACHE/dl/${p}_"*.deb | head -1)" "$src/debs"
  done
  printf 'package com.example.demo;\npublic class Main { public static void main(String[] a) { System.out.println("demo"); } }\n' \
    > "$src/java/com/example/demo/Main.java"
  javac -d "$src/classes" "$src/java/com/example/demo/Main.java"
  $PY "$WILD_LIB/javalayouts.py" "$src/debs/usr/share/java" "$src/classes" "$r" "$W/wild-java-layouts.expected.json"
  image wild-java-layouts "$base" "$r"
  expected wild-java-layouts
}
