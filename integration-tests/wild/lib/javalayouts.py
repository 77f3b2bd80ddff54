#!/usr/bin/env python3
"""javalayouts.py JARS_DIR CLASSES_DIR ROOT OUT_EXPECTED.json

Lays out real Debian-packaged jars (JARS_DIR: /usr/share/java of the .debs)
the way Java build tools package applications, under ROOT, and writes the
ground truth. Every nested jar is a real upstream jar with its own
META-INF/maven/G/A/pom.properties; the outer archives are what the tools
write (entries, manifests, STORED nested jars for Spring Boot):

  app/app.jar           Spring Boot fat jar from Gradle's bootJar: BOOT-INF/lib/*.jar
                        (STORED), BOOT-INF/classes, no Maven descriptor for the app
                        itself (Gradle writes none): the app is optional truth
  srv/webapps/shop.war  Maven war: WEB-INF/lib/*.jar, the war's own pom.properties
  opt/uber/uber.jar     maven-shade-plugin uber jar: classes of two libraries
                        merged, each library's META-INF/maven/G/A/pom.* kept, plus
                        the uber jar's own descriptor
  usr/share/jenkins/ref/plugins/git-client.jpi
                        a Jenkins plugin from gradle-jpi-plugin: manifest with
                        Group-Id / Short-Name / Plugin-Version, no Maven
                        descriptor; WEB-INF/lib holds the plugin's own classes jar
"""
import io
import json
import os
import sys
import zipfile

jars, classes, root, out = sys.argv[1:5]
T = (2024, 1, 1, 0, 0, 0)


def add(z, name, data, stored=False):
    info = zipfile.ZipInfo(name, T)
    info.compress_type = zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    z.writestr(info, data)


def read(p):
    with open(p, "rb") as f:
        return f.read()


def manifest(**kv):
    lines = ["Manifest-Version: 1.0"] + [f"{k.replace('_', '-')}: {v}" for k, v in kv.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def classes_into(z, prefix):
    for dirpath, _, files in os.walk(classes):
        for fn in sorted(files):
            p = os.path.join(dirpath, fn)
            add(z, prefix + os.path.relpath(p, classes), read(p))


expected = []


def lib(jar, group, artifact, version):
    expected.append({"type": "maven", "name": f"{group}/{artifact}", "version": version,
                     "evidence": f"pom.properties in the Debian jar {jar}"})
    return read(os.path.join(jars, jar))


os.makedirs(f"{root}/app", exist_ok=True)
with zipfile.ZipFile(f"{root}/app/app.jar", "w") as z:
    add(z, "META-INF/MANIFEST.MF", manifest(
        Main_Class="org.springframework.boot.loader.JarLauncher", Start_Class="com.example.demo.Main",
        Spring_Boot_Classes="BOOT-INF/classes/", Spring_Boot_Lib="BOOT-INF/lib/",
        Implementation_Title="demo", Implementation_Version="0.0.1-SNAPSHOT"))
    classes_into(z, "BOOT-INF/classes/")
    add(z, "BOOT-INF/lib/commons-lang3-3.12.0.jar", lib("commons-lang3.jar", "org.apache.commons", "commons-lang3", "3.12.0"), stored=True)
    add(z, "BOOT-INF/lib/commons-text-1.10.0.jar", lib("commons-text.jar", "org.apache.commons", "commons-text", "1.10.0"), stored=True)

os.makedirs(f"{root}/srv/webapps", exist_ok=True)
with zipfile.ZipFile(f"{root}/srv/webapps/shop.war", "w") as z:
    add(z, "META-INF/MANIFEST.MF", manifest(Created_By="Maven WAR Plugin 3.4.0", Build_Jdk_Spec="17"))
    add(z, "META-INF/maven/com.example/shop/pom.properties",
        b"artifactId=shop\ngroupId=com.example\nversion=2.0.0\n")
    add(z, "META-INF/maven/com.example/shop/pom.xml",
        b"<project><modelVersion>4.0.0</modelVersion><groupId>com.example</groupId>"
        b"<artifactId>shop</artifactId><version>2.0.0</version><packaging>war</packaging></project>\n")
    expected.append({"type": "maven", "name": "com.example/shop", "version": "2.0.0",
                     "evidence": "the war's own pom.properties"})
    classes_into(z, "WEB-INF/classes/")
    add(z, "WEB-INF/lib/slf4j-api-1.7.32.jar", lib("slf4j-api.jar", "org.slf4j", "slf4j-api", "1.7.32"))
    add(z, "WEB-INF/lib/jackson-core-2.14.1.jar", lib("jackson-core.jar", "com.fasterxml.jackson.core", "jackson-core", "2.14.1"))

os.makedirs(f"{root}/opt/uber", exist_ok=True)
with zipfile.ZipFile(f"{root}/opt/uber/uber.jar", "w") as z:
    add(z, "META-INF/MANIFEST.MF", manifest(Created_By="Maven JAR Plugin 3.3.0", Main_Class="com.example.demo.Main"))
    seen = set()
    for jar, g, a, v in [("commons-io.jar", "commons-io", "commons-io", "2.11.0"),
                         ("slf4j-api.jar", "org.slf4j", "slf4j-api", "1.7.32")]:
        with zipfile.ZipFile(io.BytesIO(lib(jar, g, a, v))) as inner:
            for n in inner.namelist():
                if n.endswith("/") or n == "META-INF/MANIFEST.MF" or n in seen:
                    continue
                seen.add(n)
                add(z, n, inner.read(n))
    add(z, "META-INF/maven/com.example/uber/pom.properties",
        b"artifactId=uber\ngroupId=com.example\nversion=0.3.0\n")
    expected.append({"type": "maven", "name": "com.example/uber", "version": "0.3.0",
                     "evidence": "the uber jar's own pom.properties"})
    classes_into(z, "")

plugins = f"{root}/usr/share/jenkins/ref/plugins"
os.makedirs(plugins, exist_ok=True)
inner = io.BytesIO()
with zipfile.ZipFile(inner, "w") as j:
    add(j, "META-INF/MANIFEST.MF", manifest(Created_By="Gradle 8.5"))
    classes_into(j, "")
with zipfile.ZipFile(f"{plugins}/git-client.jpi", "w") as z:
    add(z, "META-INF/MANIFEST.MF", manifest(
        Created_By="Gradle 8.5", Group_Id="org.jenkins-ci.plugins", Short_Name="git-client",
        Long_Name="Jenkins Git client plugin", Plugin_Version="4.6.0", Jenkins_Version="2.361.4",
        Url="https://github.com/jenkinsci/git-client-plugin"))
    add(z, "WEB-INF/lib/git-client.jar", inner.getvalue())
    expected.append({"type": "maven", "name": "org.jenkins-ci.plugins/git-client", "version": "4.6.0",
                     "evidence": "the plugin manifest: Group-Id, Short-Name, Plugin-Version (how Jenkins names a plugin)"})

# The application itself: Gradle wrote no group anywhere, only
# Implementation-Title/-Version, and the Dockerfile's COPY renamed
# demo-0.0.1-SNAPSHOT.jar to app.jar. A scanner may name it by the title or by
# the file name (without a group either way), or leave it out.
for name in ("demo", "app"):
    expected.append({"type": "maven", "name": name, "version": "0.0.1-SNAPSHOT", "optional": True,
                     "evidence": "no group in the image: Implementation-Title or the file name"})
with open(out, "w") as f:
    json.dump(expected, f, indent=1)
