package dev.clipedge.clip.runtime;

import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Set;
import java.util.TreeSet;
import java.util.stream.Stream;

/**
 * The real export and JNI library that the tests on LiteRT run with, named by system properties
 * ({@code mvn test -Dclipedge.litert.jni=... -Dclipedge.test.export=DIR}, which tests/test_jvm_runtime.py passes),
 * and what those tests observe of the runtime.
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

  /**
   * The threads that opening the export's float32 image encoder with {@code loader} and running it once start
   * (skips without the export or Linux's /proc). Native threads take the name of the thread that starts them;
   * the JVM's own threads have names of their own.
   */
  public static int threadsStarted(ModelLoader loader) throws IOException {
    Path export = export();
    assumeTrue(Files.isDirectory(Path.of("/proc/thread-self")), "needs Linux's /proc");
    String name = Files.readString(Path.of("/proc/thread-self/comm")).strip();
    Set<String> before = threadsNamed(name);
    try (TfliteModel model = loader.open(export.resolve("tflite/image_encoder_float32.tflite"))) {
      model.run(TfliteModel.allocate(model.inputs().get(0)));
      Set<String> after = threadsNamed(name);
      after.removeAll(before);
      return after.size();
    }
  }

  /** The ids of this process's threads whose name is {@code name} (/proc/self/task/TID/comm). */
  private static Set<String> threadsNamed(String name) throws IOException {
    Set<String> ids = new TreeSet<>();
    try (Stream<Path> tasks = Files.list(Path.of("/proc/self/task"))) {
      for (Path task : (Iterable<Path>) tasks::iterator) {
        try {
          if (Files.readString(task.resolve("comm")).strip().equals(name)) {
            ids.add(task.getFileName().toString());
          }
        } catch (IOException e) {
          // the thread ended while we listed
        }
      }
    }
    return ids;
  }
}
