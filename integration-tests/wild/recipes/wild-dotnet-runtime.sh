# shellcheck shell=bash
# wild-dotnet-runtime — issue 10, class 3 (the .NET runtime).
#   - framework-dependent: Microsoft's .NET Core 3.1.23 shared framework, the
#     real files as Microsoft ships them (taken from the `dotnetcore2` wheel on
#     PyPI, which repackages Microsoft's linux-x64 runtime), laid out as in
#     Microsoft's images: /usr/share/dotnet/dotnet and
#     /usr/share/dotnet/shared/Microsoft.NETCore.App/3.1.23/ (its
#     Microsoft.NETCore.App.deps.json and native libraries)
#   - self-contained: /app/orders.deps.json as `dotnet publish -r linux-x64
#     --self-contained` writes it for .NET 6 (hand-written after that published
#     format: no .NET SDK can be installed here), listing the runtime packs
#     `runtimepack.Microsoft.NETCore.App.Runtime.linux-x64/6.0.25` and the
#     ASP.NET Core one
# Ground truth: the runtimes by the name the .NET security advisories use for
# the deployed runtime (NuGet `Microsoft.NETCore.App.Runtime.<rid>`,
# `Microsoft.AspNetCore.App.Runtime.<rid>`) at the framework's version;
# Newtonsoft.Json from the deps.json; the build-time packages that the shared
# framework's own deps.json lists are optional (nothing of them is deployed).
build_wild_dotnet_runtime() {
  pip_venv
  local r=$W/wild-dotnet.rootfs src=$W/wild-dotnet.src base=$W/wild-dotnet.base
  rm -rf "$r" "$src" "$base"
  debian_os_release "$base"
  mkdir -p "$src" "$r/usr/share/dotnet/shared/Microsoft.NETCore.App" "$r/app"
  "$CACHE/venv/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/dl" dotnetcore2==3.1.23
  (cd "$src" && unzip -q "$CACHE"/dl/dotnetcore2-3.1.23-*.whl 'dotnetcore2/bin/dotnet' \
    'dotnetcore2/bin/shared/Microsoft.NETCore.App/3.1.23/Microsoft.NETCore.App.deps.json' \
    'dotnetcore2/bin/shared/Microsoft.NETCore.App/3.1.23/libhostpolicy.so' \
    'dotnetcore2/bin/shared/Microsoft.NETCore.App/3.1.23/System.Runtime.dll')
  cp "$src/dotnetcore2/bin/dotnet" "$r/usr/share/dotnet/dotnet"
  cp -r "$src/dotnetcore2/bin/shared/Microsoft.NETCore.App/3.1.23" "$r/usr/share/dotnet/shared/Microsoft.NETCore.App/"
  cp "$HERE/recipes/dotnet/selfcontained.deps.json" "$r/app/orders.deps.json"
  image wild-dotnet-runtime "$base" "$r"
  $PY - "$r/usr/share/dotnet/shared/Microsoft.NETCore.App/3.1.23/Microsoft.NETCore.App.deps.json" \
    > "$W/wild-dotnet-runtime.expected.json" <<'PY'
import json, sys
fw = json.load(open(sys.argv[1]))
out = [{"type": "nuget", "name": n.split("/")[0], "version": n.split("/")[1], "optional": True}
       for n, lib in fw["libraries"].items() if lib.get("type") == "package"]
out += [
    {"type": "nuget", "name": "Microsoft.NETCore.App.Runtime.linux-x64", "version": "3.1.23"},
    {"type": "nuget", "name": "Microsoft.NETCore.App.Runtime.linux-x64", "version": "6.0.25"},
    {"type": "nuget", "name": "Microsoft.AspNetCore.App.Runtime.linux-x64", "version": "6.0.25"},
    {"type": "nuget", "name": "Newtonsoft.Json", "version": "13.0.3"},
    {"type": "nuget", "name": "orders", "version": "1.0.0", "optional": True},
]
json.dump(out, sys.stdout, indent=1)
PY
  expected wild-dotnet-runtime
}
