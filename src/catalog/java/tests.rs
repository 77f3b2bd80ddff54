use std::io::{Cursor, Write};

use zip::write::SimpleFileOptions;

use super::*;

const SLF4J_PROVIDER: &[u8] = include_bytes!("fixtures/maven3-slf4j-provider.jar");
const GUICE_JNDI: &[u8] = include_bytes!("fixtures/guice-jndi.jar");
const WEBAPP: &[u8] = include_bytes!("fixtures/webapp.war");
const LANG3: &[u8] = include_bytes!("fixtures/commons-lang3-3.12.0.jar");
const GREETER: &[u8] = include_bytes!("fixtures/greeter-1.4.2.jar");
const UTILS: &[u8] = include_bytes!("fixtures/internal-utils.jar");
const SBT: &[u8] = include_bytes!("fixtures/com.example.mylib_2.13-0.3.1.jar");
const HPI: &[u8] = include_bytes!("fixtures/git.hpi");
const BOOT: &[u8] = include_bytes!("fixtures/demo-0.0.1-SNAPSHOT.jar");
const BOOT_EXEC: &[u8] = include_bytes!("fixtures/demo-executable.jar");
const SHADED: &[u8] = include_bytes!("fixtures/app-all.jar");
const EAR: &[u8] = include_bytes!("fixtures/store.ear");

fn tree(files: &[(&str, &[u8], usize)], links: &[(&str, &str)]) -> FileTree {
    let mut t = FileTree::from_files(files);
    for (l, target) in links {
        t.symlinks.insert((*l).into(), (*target).into());
    }
    t
}

fn catalog(t: &FileTree) -> Catalog {
    let mut c = Catalog::default();
    JavaCataloger.catalog(t, None, &mut c);
    c
}

/// (name, version, evidence, confidence) of each package of `c`.
fn how(c: &Catalog) -> Vec<(&str, &str, &str, &str)> {
    assert_eq!(c.notes.len(), c.packages.len());
    c.notes
        .iter()
        .map(|n| {
            (
                n.name.as_str(),
                n.version.as_str(),
                n.evidence,
                n.confidence.as_str(),
            )
        })
        .collect()
}

/// The catalog of one archive at `path`.
fn one(path: &str, data: &[u8]) -> Catalog {
    catalog(&tree(&[(path, data, 1)], &[]))
}

fn found(c: &Catalog) -> Vec<(&str, &str, &str)> {
    c.packages
        .iter()
        .map(|p| (p.name.as_str(), p.version.as_str(), p.location.as_str()))
        .collect()
}

/// A zip of `(name, data, stored)` entries.
fn zip_of(entries: &[(&str, &[u8], bool)]) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, data, stored) in entries {
        let method = if *stored {
            zip::CompressionMethod::Stored
        } else {
            zip::CompressionMethod::Deflated
        };
        w.start_file(
            *name,
            SimpleFileOptions::default().compression_method(method),
        )
        .unwrap();
        w.write_all(data).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn wants_java_archives() {
    for p in [
        "usr/share/java/guava.jar",
        "opt/app/webapp.war",
        "opt/app/app.EAR",
        "var/jenkins_home/plugins/git.jpi",
        "var/jenkins_home/plugins/git.hpi",
        "app.JAR",
    ] {
        assert!(JavaCataloger.wants(p), "{p}");
    }
    for p in [
        "usr/share/java/.jar",
        "opt/app/app.jar.sha1",
        "opt/app/jar",
        "usr/share/maven-repo/org/x/x/1/x-1.pom",
    ] {
        assert!(!JavaCataloger.wants(p), "{p}");
    }
}

#[test]
fn every_pom_properties_is_a_package_and_the_file_name_is_not() {
    // Debian's maven-slf4j-provider shades slf4j-simple; its file name
    // (maven3-slf4j-provider) names no Maven artifact.
    let c = catalog(&tree(
        &[(
            "usr/share/java/maven3-slf4j-provider.jar",
            SLF4J_PROVIDER,
            4,
        )],
        &[],
    ));
    let loc = "usr/share/java/maven3-slf4j-provider.jar";
    assert_eq!(
        found(&c),
        [
            ("org.apache.maven/maven-slf4j-provider", "3.8.7", loc),
            ("org.slf4j/slf4j-simple", "1.7.32", loc),
        ]
    );
    assert!(c.packages.iter().all(|p| p.layer == 4));
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn nested_archives_stored_and_deflated() {
    let c = catalog(&tree(&[("opt/app/webapp.war", WEBAPP, 6)], &[]));
    let loc = "opt/app/webapp.war";
    assert_eq!(
        found(&c),
        [
            ("com.example/webapp", "2.3.1", loc),
            // stored, no pom.properties: file name, and Extension-Name
            // agreeing with the artifact
            ("commons-collections/commons-collections", "3.2.2", loc),
            // deflated
            ("org.slf4j/slf4j-nop", "1.7.32", loc),
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn debian_jars_take_their_maven_repo_identity() {
    let repo = "usr/share/maven-repo/com/google/inject/extensions/guice-jndi";
    let t = tree(
        &[("usr/share/java/guice-jndi.jar", GUICE_JNDI, 4)],
        &[
            (
                &format!("{repo}/4.2.3/guice-jndi-4.2.3.jar"),
                "../../../../../../../java/guice-jndi.jar",
            ),
            (
                &format!("{repo}/debian/guice-jndi-debian.jar"),
                "../../../../../../../java/guice-jndi.jar",
            ),
        ],
    );
    assert_eq!(
        found(&catalog(&t)),
        [(
            "com.google.inject.extensions/guice-jndi",
            "4.2.3",
            "usr/share/java/guice-jndi.jar"
        )]
    );

    // Unclaimed in Debian's directory: its deb accounts for it, no guess.
    let t = tree(&[("usr/share/java/guice-jndi.jar", GUICE_JNDI, 4)], &[]);
    let c = catalog(&t);
    assert!(c.packages.is_empty(), "{:?}", c.packages);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);

    // Elsewhere the manifest names it: no version in the file name, so
    // the manifest's Bundle-Version; the symbolic name is not
    // GROUP.ARTIFACT, so no group rather than a guessed one.
    let t = tree(&[("opt/lib/guice-jndi.jar", GUICE_JNDI, 4)], &[]);
    assert_eq!(
        how(&catalog(&t)),
        [("guice-jndi", "4.2.3", "manifest", "low")]
    );
}

#[test]
fn maven_repo_paths() {
    let c = |g: &str, a: &str, v: &str| Coords {
        group: g.into(),
        artifact: a.into(),
        version: v.into(),
    };
    assert_eq!(
        maven_repo_coords("org/mongodb/bson/3.6.3/bson-3.6.3.jar"),
        Some(c("org.mongodb", "bson", "3.6.3"))
    );
    assert_eq!(
        maven_repo_coords("com/google/inject/guice/4.2.3/guice-4.2.3-no_aop.jar"),
        Some(c("com.google.inject", "guice", "4.2.3"))
    );
    for alias in [
        "org/mongodb/bson/debian/bson-debian.jar",
        "org/apache/maven/maven-core/3.x/maven-core-3.x.jar",
        "bson/3.6.3/bson-3.6.3.jar",
        "org/mongodb/bson/3.6.3/other-3.6.3.jar",
        "org/mongodb/bson/3.6.3/bson-3.6.3.pom",
    ] {
        assert_eq!(maven_repo_coords(alias), None, "{alias}");
    }
}

#[test]
fn file_name_and_manifest_guesses() {
    let m = |kv: &[(&str, &str)]| -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let g = |f: &str, man: &BTreeMap<String, String>| {
        guess(f, man).map(|id| {
            let c = id.coords;
            format!(
                "{}/{}@{} {:?} {:?}",
                c.group, c.artifact, c.version, id.evidence, id.confidence
            )
        })
    };
    assert_eq!(
        g(
            "snakeyaml-1.33.jar",
            &m(&[("Bundle-SymbolicName", "org.yaml.snakeyaml")])
        ),
        Some("org.yaml/snakeyaml@1.33 FileName Medium".into())
    );
    assert_eq!(
        g(
            "jackson-core-2.14.1.JAR",
            &m(&[(
                "Bundle-SymbolicName",
                "com.fasterxml.jackson.core.jackson-core;singleton:=true"
            )])
        ),
        Some("com.fasterxml.jackson.core/jackson-core@2.14.1 FileName Medium".into())
    );
    // no group stated: none invented
    assert_eq!(
        g("app.jar", &m(&[("Implementation-Version", "2.0.1")])),
        Some("/app@2.0.1 Manifest Low".into())
    );
    // Apache's parent pom writes `org.apache` in every commons jar: the
    // vendor id alone is no group
    assert_eq!(
        g(
            "commons-lang3-3.12.0.jar",
            &m(&[
                ("Implementation-Vendor-Id", "org.apache"),
                ("Bundle-SymbolicName", "org.apache.commons.lang3")
            ])
        ),
        Some("/commons-lang3@3.12.0 FileName Low".into())
    );
    // an sbt file name whose prefix is not corroborated keeps it
    assert_eq!(
        g("org.acme.tool-2.0.jar", &m(&[])),
        Some("/org.acme.tool@2.0 FileName Low".into())
    );
    // Specification-Version is not a release
    assert_eq!(g("app.jar", &m(&[("Specification-Version", "3.2")])), None);
    // no version anywhere: nothing rather than a versionless package
    assert_eq!(g("app.jar", &m(&[("Implementation-Title", "App")])), None);
    assert_eq!(g("app.jar", &m(&[])), None);
}

#[test]
fn manifest_main_section_with_continuations() {
    let m = parse_manifest(
        "Manifest-Version: 1.0\r\nBundle-SymbolicName: org.example.a-very-long-\r\n name\r\n\
         Implementation-Version: 1.2\r\n\r\nName: org/example/\r\nImplementation-Version: 9\r\n",
    );
    assert_eq!(m.len(), 2);
    assert_eq!(m["Bundle-SymbolicName"], "org.example.a-very-long-name");
    assert_eq!(m["Implementation-Version"], "1.2");
}

#[test]
fn maven_descriptors_by_path() {
    let pp = |n: &str| match kind_of(n) {
        Some(Kind::PomProperties(ga)) => Some(ga),
        _ => None,
    };
    assert_eq!(
        pp("META-INF/maven/org.slf4j/slf4j-nop/pom.properties"),
        Some(Some(("org.slf4j".into(), "slf4j-nop".into())))
    );
    // elsewhere under META-INF: read, but not at home
    assert_eq!(pp("META-INF/maven/pom.properties"), Some(None));
    assert_eq!(pp("META-INF/maven/a/b/c/pom.properties"), Some(None));
    // test resources are not the archive's identity
    assert_eq!(pp("test/META-INF/maven/a/b/pom.properties"), None);
    assert_eq!(pp("pom.properties"), None);
    assert!(matches!(
        kind_of("META-INF/maven/org.apache.commons/commons-lang3/pom.xml"),
        Some(Kind::PomXml(g, a)) if g == "org.apache.commons" && a == "commons-lang3"
    ));
    assert!(kind_of("META-INF/maven/a/b/c/pom.xml").is_none());
    assert!(kind_of("pom.xml").is_none());
}

#[test]
fn reduce_keeps_what_catalog_needs() {
    let raw = catalog(&tree(&[("opt/app/webapp.war", WEBAPP, 6)], &[]));
    let small = JavaCataloger.reduce("opt/app/webapp.war", WEBAPP.to_vec());
    assert!(small.starts_with(SUMMARY_MAGIC));
    assert!(small.len() < WEBAPP.len(), "{} bytes", small.len());
    let reduced = catalog(&tree(&[("opt/app/webapp.war", &small, 6)], &[]));
    assert_eq!(reduced, raw);
    assert_eq!(reduced.packages.len(), 3);

    // other files are left alone, a summary is not summarised again
    assert_eq!(JavaCataloger.reduce("etc/passwd", b"PK".to_vec()), b"PK");
    assert_eq!(
        JavaCataloger.reduce("opt/app/webapp.war", small.clone()),
        small
    );
    // not a zip: summarised to its problem
    let junk = JavaCataloger.reduce("x.jar", vec![b'#'; 100_000]);
    assert!(junk.len() < 1000);
    let s = decode(&junk).unwrap();
    assert!(!s.opened);
    assert!(
        s.problems[0].starts_with("not a zip archive"),
        "{:?}",
        s.problems
    );
}

#[test]
fn damaged_archives_warn() {
    let truncated = &WEBAPP[..WEBAPP.len() / 2];
    let bad_pom = zip_of(&[(
        "META-INF/maven/g/a/pom.properties",
        b"groupId=g\nartifactId=a\n",
        false,
    )]);
    let garbage_inner = zip_of(&[
        ("WEB-INF/lib/broken-1.0.jar", b"PK\x03\x04 not really", true),
        ("WEB-INF/lib/ok-2.0.jar", &zip_of(&[]), true),
    ]);
    let t = tree(
        &[
            ("a/truncated.war", truncated, 0),
            ("b/not-a-zip.jar", b"\x7fELF garbage", 0),
            ("c/bad-pom.jar", &bad_pom, 0),
            ("d/outer.war", &garbage_inner, 0),
            ("e/summary.jar", b"scangate-java-summary/2\n{\"poms\": 3", 0),
            ("f/empty.jar", b"", 0),
        ],
        &[],
    );
    let c = catalog(&t);
    // ok-2.0.jar: no pom.properties, guessed from its file name
    assert_eq!(found(&c), [("ok", "2.0", "d/outer.war")]);
    let w = &c.warnings;
    assert_eq!(w.len(), 6, "{w:#?}");
    assert!(
        w[0].starts_with("java: /a/truncated.war: not a zip archive"),
        "{}",
        w[0]
    );
    assert!(
        w[1].starts_with("java: /b/not-a-zip.jar: not a zip archive"),
        "{}",
        w[1]
    );
    assert_eq!(
        w[2],
        "java: /c/bad-pom.jar: META-INF/maven/g/a/pom.properties: no valid groupId, artifactId and version"
    );
    assert!(
        w[3].starts_with("java: /d/outer.war: WEB-INF/lib/broken-1.0.jar: not a zip archive"),
        "{}",
        w[3]
    );
    assert!(
        w[4].starts_with("java: /e/summary.jar: unreadable summary"),
        "{}",
        w[4]
    );
    assert!(
        w[5].starts_with("java: /f/empty.jar: not a zip archive"),
        "{}",
        w[5]
    );
}

#[test]
fn nesting_and_size_are_bounded() {
    // a jar in a jar in a jar in a jar: the innermost is not opened
    let l3 = zip_of(&[(
        "META-INF/maven/deep/l3/pom.properties",
        b"groupId=deep\nartifactId=l3\nversion=3",
        false,
    )]);
    let l2 = zip_of(&[
        ("lib/l3.jar", &l3, true),
        (
            "META-INF/maven/deep/l2/pom.properties",
            b"groupId=deep\nartifactId=l2\nversion=2",
            false,
        ),
    ]);
    let l1 = zip_of(&[("lib/l2.jar", &l2, false)]);
    let top = zip_of(&[("BOOT-INF/lib/l1-1.0.jar", &l1, true)]);
    let c = catalog(&tree(&[("app/top.jar", &top, 0)], &[]));
    assert_eq!(
        found(&c),
        [
            ("l1", "1.0", "app/top.jar"),
            ("deep/l2", "2", "app/top.jar")
        ]
    );
    assert_eq!(
        c.warnings,
        [format!(
            "java: /app/top.jar: BOOT-INF/lib/l1-1.0.jar: lib/l2.jar: lib/l3.jar: nested deeper than {MAX_DEPTH}: not read"
        )]
    );

    // a manifest that inflates past its limit is refused, not read
    let bomb = vec![b'A'; (MAX_TEXT_SIZE + 1) as usize];
    let jar = zip_of(&[("META-INF/MANIFEST.MF", &bomb, false)]);
    assert!(jar.len() < 64 * 1024);
    let s = summarize(&jar);
    assert!(s.manifest.is_empty());
    assert_eq!(s.problems.len(), 1);
    assert!(
        s.problems[0].contains("over the 1048576-byte limit"),
        "{:?}",
        s.problems
    );
}

#[test]
fn every_truncation_and_bit_flip_of_a_real_war_is_handled() {
    for len in 0..WEBAPP.len() {
        let s = summarize(&WEBAPP[..len]);
        // only the whole file opens as the war
        assert!(
            !s.opened || s.poms.iter().any(|c| c.coords.artifact == "webapp"),
            "{len}"
        );
    }
    let mut data = WEBAPP.to_vec();
    for i in (0..data.len()).step_by(7) {
        data[i] ^= 0x5a;
        let _ = summarize(&data);
        let t = tree(&[("opt/app/webapp.war", &data, 0)], &[]);
        let _ = catalog(&t);
        data[i] ^= 0x5a;
    }
}

// ---------------------------------------------------------------------------
// Jars without pom.properties (issue 10, class 2). Ground truth by hand from
// each fixture's build (fixtures/build.sh), reason beside each.

/// A copy of the zip `data` without the entries `drop` names.
fn without(data: &[u8], drop: &[&str]) -> Vec<u8> {
    let mut z = zip::ZipArchive::new(Cursor::new(data)).unwrap();
    let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for i in 0..z.len() {
        let f = z.by_index_raw(i).unwrap();
        let name = f.name().unwrap().into_owned();
        if !drop.contains(&name.as_str()) {
            w.raw_copy_file(f).unwrap();
        }
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn maven_built_jar_is_named_by_its_pom_properties() {
    // Debian's commons-lang3 (maven-bundle-plugin): pom.properties at home.
    let c = one("opt/lib/commons-lang3-3.12.0.jar", LANG3);
    assert_eq!(
        how(&c),
        [(
            "org.apache.commons/commons-lang3",
            "3.12.0",
            "pom.properties",
            "high"
        )]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn pom_xml_alone_names_the_jar() {
    // As a Gradle build embedding only the generated pom leaves it: the
    // real pom.xml (groupId/artifactId/version literal, parent
    // commons-parent at Debian's `debian` version) agrees with its path.
    let jar = without(
        LANG3,
        &["META-INF/maven/org.apache.commons/commons-lang3/pom.properties"],
    );
    let c = one("opt/lib/commons-lang3-3.12.0.jar", &jar);
    assert_eq!(
        how(&c),
        [(
            "org.apache.commons/commons-lang3",
            "3.12.0",
            "pom.xml",
            "high"
        )]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn pom_xml_with_inheritance_and_placeholders() {
    let jar = |pom: &str| {
        zip_of(&[(
            "META-INF/maven/com.example.platform/billing-core/pom.xml",
            pom.as_bytes(),
            false,
        )])
    };
    // Maven's CI-friendly versions: group from the parent, ${revision}
    // from the pom's own properties.
    let inherited = r#"<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <parent>
    <groupId>com.example.platform</groupId>
    <artifactId>platform-parent</artifactId>
    <version>${revision}</version>
  </parent>
  <artifactId>billing-core</artifactId>
  <properties><revision>2.1.0</revision></properties>
  <dependencies><dependency><groupId>x</groupId><artifactId>y</artifactId>
    <version>9</version></dependency></dependencies>
</project>"#;
    let c = one("app/billing-core.jar", &jar(inherited));
    assert_eq!(
        how(&c),
        [(
            "com.example.platform/billing-core",
            "2.1.0",
            "pom.xml",
            "high"
        )]
    );
    // ${revision} set on the command line (`mvn -Drevision=…`): not in the
    // image, so no version, so no package, and a warning says why.
    let unresolved = inherited.replace("<properties><revision>2.1.0</revision></properties>", "");
    let c = one("app/billing-core.jar", &jar(&unresolved));
    assert!(c.packages.is_empty(), "{:?}", c.packages);
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert!(
        c.warnings[0].contains("unresolved placeholder"),
        "{:?}",
        c.warnings
    );
    // a pom that names another group than its path: the path (written by
    // the build from the effective model) with medium confidence
    let other = inherited.replace(
        "<artifactId>billing-core</artifactId>",
        "<groupId>org.other</groupId><artifactId>billing-core</artifactId>",
    );
    let c = one("app/billing-core.jar", &jar(&other));
    assert_eq!(
        how(&c),
        [(
            "com.example.platform/billing-core",
            "2.1.0",
            "pom.xml",
            "medium"
        )]
    );
    // a DTD (entity expansion) is refused
    let dtd = format!("<!DOCTYPE p [<!ENTITY a \"aaaa\">]>{inherited}");
    let c = one("app/billing-core.jar", &jar(&dtd));
    assert!(c.packages.is_empty());
    assert!(c.warnings[0].contains("DTD"), "{:?}", c.warnings);
}

#[test]
fn gradle_jar_by_manifest_and_file_name() {
    // `Automatic-Module-Name: com.example.greeter` is GROUP.ARTIFACT for the
    // file name's artifact `greeter`.
    let c = one("app/lib/greeter-1.4.2.jar", GREETER);
    assert_eq!(
        how(&c),
        [("com.example/greeter", "1.4.2", "filename", "medium")]
    );
    // Only Implementation-Title/Version: no group is stated, none invented.
    let c = one("app/lib/internal-utils.jar", UTILS);
    assert_eq!(how(&c), [("internal-utils", "0.9.0", "manifest", "low")]);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn sbt_file_name_with_its_organization() {
    // sbt writes the organization in Implementation-Vendor-Id; the file
    // name starts with it, so it is cut off the artifact (which keeps
    // its Scala suffix, as published).
    let c = one("opt/app/lib/com.example.mylib_2.13-0.3.1.jar", SBT);
    assert_eq!(
        how(&c),
        [("com.example/mylib_2.13", "0.3.1", "filename", "medium")]
    );
    // renamed to the plain form: the vendor id alone is no group
    let c = one("opt/app/lib/mylib_2.13-0.3.1.jar", SBT);
    assert_eq!(how(&c), [("mylib_2.13", "0.3.1", "filename", "low")]);
}

#[test]
fn jenkins_plugin_manifest() {
    // maven-hpi-plugin's Short-Name, Plugin-Version and Group-Id; the
    // plugin's classes jar in WEB-INF/lib has no version: nothing.
    let c = one("var/jenkins_home/plugins/git.jpi", HPI);
    assert_eq!(
        how(&c),
        [("org.jenkins-ci.plugins/git", "5.2.1", "manifest", "medium")]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn spring_boot_fat_jar_and_its_executable_form() {
    // The app (Gradle bootJar, no pom): the file name; BOOT-INF/lib,
    // stored: commons-lang3 by its pom.properties, greeter by rule 4.
    let want = [
        ("demo", "0.0.1-SNAPSHOT", "filename", "low"),
        (
            "org.apache.commons/commons-lang3",
            "3.12.0",
            "pom.properties",
            "high",
        ),
        ("com.example/greeter", "1.4.2", "filename", "medium"),
    ];
    let c = one("app/demo-0.0.1-SNAPSHOT.jar", BOOT);
    assert_eq!(how(&c), want);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // a launch script before the zip: same archive, same answer
    let c = one("app/demo-0.0.1-SNAPSHOT.jar", BOOT_EXEC);
    assert_eq!(how(&c), want);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn shaded_jar_one_package_per_embedded_pom() {
    // jackson-core by its pom.properties (its pom.xml beside it is not
    // read), commons-lang3 by its pom.xml alone; the shaded jar itself has
    // no descriptor and is not guessed at (rule 1).
    let c = one("app/app-all.jar", SHADED);
    assert_eq!(
        how(&c),
        [
            (
                "com.fasterxml.jackson.core/jackson-core",
                "2.14.1",
                "pom.properties",
                "high"
            ),
            (
                "org.apache.commons/commons-lang3",
                "3.12.0",
                "pom.xml",
                "high"
            ),
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn ear_with_a_war_and_lib() {
    // ear → war → jar is within the nesting limit.
    let c = one("opt/jboss/store.ear", EAR);
    let mut got = how(&c);
    got.sort();
    assert_eq!(
        got,
        [
            ("com.example/greeter", "1.4.2", "filename", "medium"),
            ("com.example/webapp", "2.3.1", "pom.properties", "high"),
            (
                "commons-collections/commons-collections",
                "3.2.2",
                "filename",
                "low"
            ),
            ("org.slf4j/slf4j-nop", "1.7.32", "pom.properties", "high"),
        ]
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn debian_maven_repo_identity_is_high() {
    let repo = "usr/share/maven-repo/com/google/inject/extensions/guice-jndi";
    let t = tree(
        &[("usr/share/java/guice-jndi.jar", GUICE_JNDI, 4)],
        &[(
            &format!("{repo}/4.2.3/guice-jndi-4.2.3.jar"),
            "../../../../../../../java/guice-jndi.jar",
        )],
    );
    assert_eq!(
        how(&catalog(&t)),
        [(
            "com.google.inject.extensions/guice-jndi",
            "4.2.3",
            "maven-repo",
            "high"
        )]
    );
}

#[test]
fn sbom_components_state_evidence_and_confidence() {
    use crate::sbom::{ImageMeta, SbomOptions, build};
    let t = tree(
        &[
            ("app/lib/internal-utils.jar", UTILS, 1),
            ("app/lib/greeter-1.4.2.jar", GREETER, 1),
            ("app/lib/commons-lang3-3.12.0.jar", LANG3, 1),
        ],
        &[],
    );
    let bom = build(
        &crate::catalog::run(&t),
        &ImageMeta::default(),
        &SbomOptions::default(),
    );
    let props = |name: &str| {
        let c = bom.components.iter().find(|c| c.name == name).unwrap();
        let p = |k: &str| c.property_values(k).collect::<Vec<_>>().join(",");
        (
            c.group.clone(),
            c.purl.clone().unwrap(),
            p("scangate:evidence"),
            p("scangate:confidence"),
        )
    };
    assert_eq!(
        props("internal-utils"),
        (
            None,
            "pkg:maven/internal-utils@0.9.0".into(),
            "manifest".into(),
            "low".into()
        )
    );
    assert_eq!(
        props("greeter"),
        (
            Some("com.example".into()),
            "pkg:maven/com.example/greeter@1.4.2".into(),
            "filename".into(),
            "medium".into()
        )
    );
    assert_eq!(
        props("commons-lang3"),
        (
            Some("org.apache.commons".into()),
            "pkg:maven/org.apache.commons/commons-lang3@3.12.0".into(),
            "pom.properties".into(),
            "high".into()
        )
    );
}

// ---------------------------------------------------------------------------
// Jar bombs (issue 9, defect 8).

/// CRC-32 (IEEE), bit by bit: test inputs are small.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = (crc >> 1) ^ (0xEDB8_8320 & 0u32.wrapping_sub(crc & 1));
        }
    }
    !crc
}

/// The overlapping-entries bomb: one local file, `inflated` bytes of `0`
/// deflated, and `n` central-directory records pointing at it, each under
/// another pom.properties name: what a peer inflates `n` times.
fn overlap_bomb(n: u16, inflated: usize) -> Vec<u8> {
    let plain = vec![b'0'; inflated];
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
    enc.write_all(&plain).unwrap();
    let data = enc.finish().unwrap();
    let crc = crc32(&plain);
    let name = |i: u16| format!("META-INF/maven/bomb/a{i}/pom.properties");
    let sizes = |out: &mut Vec<u8>, name_len: usize| {
        out.extend(crc.to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out.extend((inflated as u32).to_le_bytes());
        out.extend((name_len as u16).to_le_bytes());
        out.extend(0u16.to_le_bytes()); // extra
    };
    // version 20, no flags, deflate, 1980-01-01 00:00
    let common = [20u8, 0, 0, 0, 8, 0, 0, 0, 0x21, 0];
    let mut out = b"PK\x03\x04".to_vec();
    out.extend(common);
    sizes(&mut out, name(0).len());
    out.extend(name(0).as_bytes());
    out.extend(&data);
    let cd_start = out.len();
    for i in 0..n {
        out.extend(b"PK\x01\x02\x14\x03");
        out.extend(common);
        sizes(&mut out, name(i).len());
        // comment length, disk, internal and external attributes
        out.extend([0u8; 10]);
        out.extend(0u32.to_le_bytes()); // every record: the local header at 0
        out.extend(name(i).as_bytes());
    }
    let cd_len = out.len() - cd_start;
    out.extend(b"PK\x05\x06\0\0\0\0");
    out.extend(n.to_le_bytes());
    out.extend(n.to_le_bytes());
    out.extend((cd_len as u32).to_le_bytes());
    out.extend((cd_start as u32).to_le_bytes());
    out.extend(0u16.to_le_bytes());
    out
}

#[test]
fn overlapping_entries_bomb_is_skipped_in_bounded_time() {
    // 20,000 names for one 1 MiB stream: ~20 GiB inflated before the fix.
    let bomb = overlap_bomb(20_000, 1 << 20);
    assert!(bomb.len() < 2 << 20, "{} bytes", bomb.len());
    let started = std::time::Instant::now();
    let t = tree(
        &[
            ("opt/app/lib/bomb-1.0.jar", &bomb, 1),
            ("opt/app/lib/greeter-1.4.2.jar", GREETER, 1),
        ],
        &[],
    );
    let c = catalog(&t);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    // the other jar is still read; the bomb names nothing, not even by
    // its file name
    assert_eq!(
        how(&c),
        [("com.example/greeter", "1.4.2", "filename", "medium")]
    );
    assert_eq!(
        c.warnings,
        [
            "java: /opt/app/lib/bomb-1.0.jar: skipped, overlapping entries: entries share bytes (a zip bomb)"
        ]
    );
    // the same, reduced by the layer reader
    let small = JavaCataloger.reduce("bomb.jar", bomb);
    assert!(small.len() < 1000);

    // one record for the stream is no bomb: it is opened and read (its
    // zeros are no pom.properties)
    let s = summarize(&overlap_bomb(1, 64));
    assert!(s.opened);
    assert_eq!(
        s.problems,
        ["META-INF/maven/bomb/a0/pom.properties: no valid groupId, artifactId and version"]
    );
}

#[test]
fn declared_entries_must_fit_the_archive() {
    // an end record claiming 65,535 entries in a few hundred bytes
    let mut jar = zip_of(&[("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n", false)]);
    let eocd = jar.len() - 22;
    jar[eocd + 8..eocd + 12].copy_from_slice(&[0xff, 0xfe, 0xff, 0xfe]);
    let s = summarize(&jar);
    assert!(!s.opened);
    assert_eq!(
        s.problems,
        [format!(
            "skipped, overlapping entries: 65279 entries declared in {} bytes",
            jar.len()
        )]
    );

    // a zip64 record declaring more than MAX_ENTRIES, with room for them
    let n = archive::MAX_ENTRIES + 1;
    let mut big = vec![0u8; (n * 76) as usize];
    let rec = big.len() - 22 - 20 - 56;
    big[rec..rec + 4].copy_from_slice(b"PK\x06\x06");
    big[rec + 24..rec + 32].copy_from_slice(&n.to_le_bytes());
    big[rec + 32..rec + 40].copy_from_slice(&n.to_le_bytes());
    let loc = rec + 56;
    big[loc..loc + 4].copy_from_slice(b"PK\x06\x07");
    big[loc + 8..loc + 16].copy_from_slice(&(rec as u64).to_le_bytes());
    let eocd = loc + 20;
    big[eocd..eocd + 4].copy_from_slice(b"PK\x05\x06");
    big[eocd + 8..eocd + 12].fill(0xff);
    assert_eq!(archive::declared_entries(&big), n);
    let s = summarize(&big);
    assert_eq!(
        s.problems,
        [format!(
            "skipped, {n} entries: more than a jar holds (a zip bomb)"
        )]
    );
    // a zip64 marker with no record to read counts as unbounded
    big[loc..loc + 4].fill(0);
    assert_eq!(archive::declared_entries(&big), u64::MAX);
}

#[test]
fn inflated_bytes_are_metered_per_archive() {
    // 40 distinct entries of 1 MiB each, no overlap: within every per-entry
    // limit, but over an 8 MiB budget, nested archives included.
    let mb = vec![b'x'; 1 << 20];
    let names: Vec<String> = (0..40)
        .map(|i| format!("META-INF/maven/g/a{i}/pom.properties"))
        .collect();
    let entries: Vec<(&str, &[u8], bool)> =
        names.iter().map(|n| (n.as_str(), &mb[..], false)).collect();
    let inner = zip_of(&entries);
    assert!(inner.len() < 200_000);
    let outer = zip_of(&[
        ("WEB-INF/lib/a.jar", &inner, false),
        ("WEB-INF/lib/b.jar", &inner, false),
    ]);
    let started = std::time::Instant::now();
    let s = summarize_within(&outer, 8 << 20);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    let all = s.all_problems();
    assert!(
        all.iter()
            .any(|p| p.contains("over the 8388608-byte budget of inflated data")),
        "{all:?}"
    );
    // the budget stops the nested archive and everything after it: b.jar
    // is never opened
    assert_eq!(s.nested.len(), 1);
    assert_eq!(s.nested[0].0, "WEB-INF/lib/a.jar");
    assert!(s.nested[0].1.problems.len() < 10, "{all:?}");
}

#[test]
fn cancellation_stops_between_entries() {
    let token = crate::cancel::CancelToken::new();
    token.cancel();
    let s = crate::cancel::scope(&token, || summarize(BOOT));
    assert!(s.opened);
    assert!(s.nested.is_empty() && s.manifest.is_empty());
    assert_eq!(s.problems.len(), 1);
    assert!(s.problems[0].starts_with("cancelled"), "{:?}", s.problems);
}

#[test]
fn pom_placeholders_resolve_only_from_the_pom() {
    let p = |body: &str| pom::parse(&format!("<project>{body}</project>"));
    let got = p(
        "<parent><groupId>g.parent</groupId><version>7</version></parent>\
                 <artifactId>${name}</artifactId><version>${project.parent.version}.1</version>\
                 <properties><name>${base}-core</name><base>lib</base></properties>",
    )
    .unwrap();
    assert_eq!(
        (
            got.group.as_deref(),
            got.artifact.as_deref(),
            got.version.as_deref()
        ),
        (Some("g.parent"), Some("lib-core"), Some("7.1"))
    );
    // a self-reference never resolves; an unknown name neither
    let got =
        p("<groupId>g</groupId><artifactId>a</artifactId><version>${project.version}</version>")
            .unwrap();
    assert_eq!(got.version, None);
    let got =
        p("<groupId>${env.GROUP}</groupId><artifactId>a</artifactId><version>1</version>").unwrap();
    assert_eq!(got.group, None);
    // dependency and plugin versions are not the project's
    let got = p(
        "<artifactId>a</artifactId><dependencies><dependency><version>9</version>\
                 </dependency></dependencies>",
    )
    .unwrap();
    assert_eq!(got.version, None);
    // damage and hostile shapes are errors, not guesses
    assert!(pom::parse("<project><version>1</version>").is_err());
    assert!(pom::parse("<a/><b/>").is_err());
    assert!(pom::parse(&"<x>".repeat(100)).is_err());
    assert!(pom::parse("not xml").is_err());
}

#[test]
fn many_end_records_in_the_comment_stay_cheap() {
    // The zip reader tries each end-of-central-directory record it finds in
    // the last 64 KiB: a comment of 2,900 copies of the real one, each
    // pointing at the same 5,000-entry directory, must not cost 2,900
    // directory reads.
    let names: Vec<String> = (0..5000).map(|i| format!("c/{i:05}.class")).collect();
    let entries: Vec<(&str, &[u8], bool)> =
        names.iter().map(|n| (n.as_str(), &b""[..], true)).collect();
    let mut jar = zip_of(&entries);
    let eocd = jar[jar.len() - 22..].to_vec();
    let copies = 2900;
    let comment_len = (copies * 22) as u16;
    let at = jar.len() - 2;
    jar[at..].copy_from_slice(&comment_len.to_le_bytes());
    for _ in 0..copies {
        jar.extend(&eocd);
    }
    let started = std::time::Instant::now();
    let s = summarize(&jar);
    assert!(started.elapsed().as_secs() < 5, "{:?}", started.elapsed());
    assert!(s.nested.is_empty(), "{:?}", s.problems);
}
