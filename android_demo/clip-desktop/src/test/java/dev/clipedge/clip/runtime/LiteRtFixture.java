package dev.clipedge.clip.runtime;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.nio.file.Path;

/**
 * The real export and JNI library that the tests on LiteRT run with, named by system properties
 * ({@code mvn test -Dclipedge.litert.jni=... -Dclipedge.test.export=DIR}, which tests/test_jvm_runtime.py passes).
 */
public final class LiteRtFixture {
  private LiteRtFixture() {}

  /** The export's folder; skips the calling test when either property is unset. */
  public static Path export() {
    String library = System.getProperty(LiteRtJvmModel.LIBRARY_PROPERTY);
    String export = System.getProperty("clipedge.test.export");
    assumeTrue(library != null && export != null, "set -Dclipedge.litert.jni and -Dclipedge.test.export");
    return Path.of(export);
  }
}
