use std::io::Write;

use zip::write::SimpleFileOptions;

use super::*;

const SLF4J_PROVIDER: &[u8] = include_bytes!("fixtures/maven3-slf4j-provider.jar");
const GUICE_JNDI: &[u8] = include_bytes!("fixtures/guice-jndi.jar");
const WEBAPP: &[u8] = include_bytes!("fixtures/webapp.war");

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

    // Elsewhere the guess is made: no version in the file name, so the
    // manifest's Bundle-Version; the symbolic name is not GROUP.ARTIFACT.
    let t = tree(&[("opt/lib/guice-jndi.jar", GUICE_JNDI, 4)], &[]);
    assert_eq!(
        found(&catalog(&t)),
        [("guice-jndi/guice-jndi", "4.2.3", "opt/lib/guice-jndi.jar")]
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
        guess(f, man).map(|c| format!("{}/{}@{}", c.group, c.artifact, c.version))
    };
    assert_eq!(
        g(
            "snakeyaml-1.33.jar",
            &m(&[("Bundle-SymbolicName", "org.yaml.snakeyaml")])
        ),
        Some("org.yaml/snakeyaml@1.33".into())
    );
    assert_eq!(
        g(
            "jackson-core-2.14.1.JAR",
            &m(&[(
                "Bundle-SymbolicName",
                "com.fasterxml.jackson.core.jackson-core;singleton:=true"
            )])
        ),
        Some("com.fasterxml.jackson.core/jackson-core@2.14.1".into())
    );
    assert_eq!(
        g("app.jar", &m(&[("Implementation-Version", "2.0.1")])),
        Some("app/app@2.0.1".into())
    );
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
fn pom_properties_only_at_maven_depth() {
    assert!(is_pom_properties(
        "META-INF/maven/org.slf4j/slf4j-nop/pom.properties"
    ));
    assert!(!is_pom_properties("META-INF/maven/pom.properties"));
    assert!(!is_pom_properties("META-INF/maven/a/b/c/pom.properties"));
    assert!(!is_pom_properties("test/META-INF/maven/a/b/pom.properties"));
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
            ("e/summary.jar", b"scangate-java-summary/1\n{\"poms\": 3", 0),
            ("f/empty.jar", b"", 0),
        ],
        &[],
    );
    let c = catalog(&t);
    // ok-2.0.jar: no pom.properties, guessed from its file name
    assert_eq!(found(&c), [("ok/ok", "2.0", "d/outer.war")]);
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
            ("l1/l1", "1.0", "app/top.jar"),
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
            !s.opened || s.poms.iter().any(|c| c.artifact == "webapp"),
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
