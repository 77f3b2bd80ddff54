# shellcheck shell=bash
# wild-python-odd — issue 10, class 5 (Python eggs and odd layouts).
#   - a zipped egg and an unzipped egg directory, built by setuptools'
#     bdist_egg from the real sdists (six, toml), where easy_install put them
#     (site-packages/NAME-VER-py3.11.egg, listed in easy-install.pth)
#   - `pip install --target /app/vendor` (a PYTHONPATH application folder,
#     outside any site-packages) of wheels whose dist-info names keep their
#     mixed case (Jinja2-3.1.2.dist-info, MarkupSafe-…, PyYAML-…)
#   - an upper-case `.EGG-INFO`-style directory name is not made up here:
#     only what the tools write.
# Ground truth: importlib.metadata with each egg and /app/vendor on the path,
# as the interpreter sees them at run time.
build_wild_python_odd() {
  pip_venv
  local r=$W/wild-py.rootfs src=$W/wild-py.src base=$W/wild-py.base
  rm -rf "$r" "$src" "$base"
  debian_os_release "$base"
  local site=$r/usr/local/lib/python3.11/site-packages vendor=$r/app/vendor
  mkdir -p "$site" "$vendor" "$src"
  "$CACHE/venv/bin/pip" download -q --disable-pip-version-check --no-deps --no-binary :all: \
    -d "$CACHE/dl" six==1.16.0 toml==0.10.2
  local p
  for p in six-1.16.0 toml-0.10.2; do
    tar -xzf "$CACHE/dl/$p.tar.gz" -C "$src"
    (cd "$src/$p" && SOURCE_DATE_EPOCH=1700000000 "$CACHE/venv/bin/python" setup.py -q bdist_egg >/dev/null 2>&1)
  done
  cp "$src"/six-1.16.0/dist/six-1.16.0-py3.11.egg "$site/"
  mkdir "$site/toml-0.10.2-py3.11.egg"
  (cd "$site/toml-0.10.2-py3.11.egg" && unzip -q "$src"/toml-0.10.2/dist/toml-0.10.2-py3.11.egg)
  printf './six-1.16.0-py3.11.egg\n./toml-0.10.2-py3.11.egg\n' > "$site/easy-install.pth"
  "$CACHE/venv/bin/pip" install -q --disable-pip-version-check --no-deps --no-compile \
    --target "$vendor" Jinja2==3.1.2 MarkupSafe==2.1.3 PyYAML==6.0.1
  image wild-python-odd "$base" "$r"
  $PY "$WILD_LIB/expected.py" pip "$site/six-1.16.0-py3.11.egg" "$site/toml-0.10.2-py3.11.egg" "$vendor" \
    > "$W/wild-python-odd.expected.json"
  expected wild-python-odd
}
