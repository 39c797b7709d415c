package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Command lines and stdin that must end in one line on stderr, not in exhausted threads, memory or a crash. */
class HostileInputTest {
  @TempDir Path folder;

  private static String[] run(InputStream stdin, String... argv) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = Main.run(argv, stdin, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new String[] {Integer.toString(status), out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8)};
  }

  @Test
  void threadCountsAboveTheBoundAreRefusedBeforeAnythingStarts() {
    // The export does not exist: the refusal comes from the flag check, before the manifest is read or a model
    // (and its threads) is opened.
    String missing = folder.resolve("no-export").toString();
    for (String threads : new String[] {"1000000", "257"}) {
      String[] result = run(InputStream.nullInputStream(), "embed-text", "--export", missing, "--variant",
          "float32", "--threads", threads);
      assertEquals("2", result[0]);
      assertTrue(result[2].startsWith("clip-jvm embed-text: --threads must be at most 256, got " + threads + ";"),
          result[2]);
      assertEquals(1, result[2].strip().split("\n").length, result[2]);
    }
    // 256 passes the flag check and fails only at the (missing) export.
    String[] result = run(InputStream.nullInputStream(), "embed-image", "--export", missing, "--variant",
        "float32", "--threads", "256", "x.png");
    assertEquals("1", result[0]);
    assertTrue(result[2].contains("does not exist"), result[2]);
  }
}
