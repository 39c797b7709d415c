package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.clipedge.clip.index.ElementType;
import dev.clipedge.clip.index.Fingerprint;
import dev.clipedge.clip.index.IndexWriter;
import java.awt.image.BufferedImage;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import javax.imageio.ImageIO;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * clip-jvm's contract with scripts: exit status 0 on success, 2 and one stderr line with the usage for a bad
 * command line, 1 and one stderr line naming the problem for anything else; and how options are read.
 */
class MainTest {
  @TempDir Path folder;

  /** {status, stdout, stderr} of one in-process run. */
  private static String[] run(String... argv) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int status = Main.run(argv, InputStream.nullInputStream(), new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new String[] {Integer.toString(status), out.toString(StandardCharsets.UTF_8),
        err.toString(StandardCharsets.UTF_8)};
  }

  private static void assertOneLine(String stderr) {
    assertTrue(stderr.endsWith("\n") && stderr.indexOf('\n') == stderr.length() - 1, stderr);
  }

  @Test
  void noOrUnknownCommandListsTheCommands() {
    String[] none = run();
    assertEquals("2", none[0]);
    List<String> lines = none[2].lines().toList();
    assertEquals("clip-jvm: no command given; commands: tokenize, embed-text, embed-image, classify, preprocess, "
        + "index, search", lines.get(0));
    assertEquals(8, lines.size(), none[2]); // then one usage line per command
    assertTrue(lines.get(4).startsWith("  clip-jvm classify --export DIR --variant V"), lines.get(4));
    String[] unknown = run("embed", "--export", "x");
    assertEquals("2", unknown[0]);
    assertTrue(unknown[2].startsWith("clip-jvm: unknown command 'embed'; commands: "), unknown[2]);
    assertEquals("", unknown[1]);
  }

  @Test
  void usageErrorsExitTwoWithOneLine() {
    String[] missing = run("preprocess", "--output", "x.rgb", "in.png");
    assertEquals("2", missing[0]);
    assertEquals("clip-jvm preprocess: --resolution is required; usage: clip-jvm preprocess --resolution R "
        + "--output OUT.rgb FILE\n", missing[2]);
    String[] noValue = run("embed-text", "--export");
    assertEquals("2", noValue[0]);
    assertTrue(noValue[2].startsWith("clip-jvm embed-text: --export needs a value; usage: "), noValue[2]);
    assertOneLine(noValue[2]);
    String[] twice = run("tokenize", "--export", "a", "--export=b");
    assertEquals("2", twice[0]);
    assertTrue(twice[2].startsWith("clip-jvm tokenize: --export given twice; usage: "), twice[2]);
    String[] unknownFlag = run("preprocess", "--resolution", "4", "--output", "x.rgb", "--top_k", "3", "in.png");
    assertEquals("2", unknownFlag[0]);
    assertTrue(unknownFlag[2].startsWith("clip-jvm preprocess: unknown option --top_k; usage: "), unknownFlag[2]);
    String[] zero = run("preprocess", "--resolution", "0", "--output", "x.rgb", "in.png");
    assertEquals("2", zero[0]);
    assertTrue(zero[2].startsWith("clip-jvm preprocess: --resolution must be a positive integer, got '0'"), zero[2]);
  }

  @Test
  void modelCommandsRefuseThreadsAndAcceleratorsOutsideTheDocumentedRangeFirst() throws IOException {
    // android_demo/README.md: model commands take --threads N (0 to 256) and --accelerator cpu|gpu|npu. Each model
    // command refuses other values as a bad command line, before it reads the export (which does not exist here)
    // or writes anything. search reads its index first (its variant is the default --variant): a real, empty one.
    String export = folder.resolve("no-export").toString();
    Path newIndex = folder.resolve("new.clipidx");
    Path searched = folder.resolve("searched.clipidx");
    IndexWriter.write(searched, new Fingerprint(new byte[32], "float32", "t"), ElementType.FLOAT16, 2, null,
        List.of());
    List<List<String>> commands = List.of(
        List.of("embed-text", "--export", export, "--variant", "float32"),
        List.of("embed-image", "--export", export, "--variant", "float32", "a.png"),
        List.of("classify", "--export", export, "--variant", "float32", "a.png", "cat"),
        List.of("index", "--export", export, "--variant", "float32", "--index", newIndex.toString(), "photos"),
        List.of("search", "--export", export, "--index", searched.toString(), "a cat"));
    String[][] refusals = {
        {"--threads=257", "--threads must be at most 256, got 257"},
        {"--threads=-1", "--threads must be a whole number >= 0, got '-1'"},
        {"--accelerator=tpu", "--accelerator must be cpu, gpu or npu, got 'tpu'"}};
    for (List<String> command : commands) {
      String name = command.get(0);
      for (String[] refusal : refusals) {
        List<String> argv = new ArrayList<>(command);
        argv.add(refusal[0]);
        String[] result = run(argv.toArray(String[]::new));
        assertEquals("2", result[0], argv + ": " + result[2]);
        assertTrue(result[2].startsWith("clip-jvm " + name + ": " + refusal[1] + "; usage: clip-jvm " + name + " "),
            result[2]);
        assertTrue(result[2].contains("[--threads N] [--accelerator cpu|gpu|npu]"), result[2]);
        assertOneLine(result[2]);
        assertEquals("", result[1]);
      }
      // The ends of the range pass the flags: only then is the export read, and found missing (status 1).
      for (List<String> accepted : List.of(List.of("--threads=0", "--accelerator=gpu"),
          List.of("--threads=256", "--accelerator=NPU"))) {
        List<String> argv = new ArrayList<>(command);
        argv.addAll(accepted);
        String[] result = run(argv.toArray(String[]::new));
        assertEquals("1", result[0], argv + ": " + result[2]);
        assertTrue(result[2].contains(export + " does not exist"), result[2]);
      }
    }
    assertFalse(Files.exists(newIndex), "a refused index command writes no index");
  }

  @Test
  void otherFailuresExitOneWithOneLineNamingTheProblem() {
    Path missing = folder.resolve("missing.png");
    String[] image = run("preprocess", "--resolution", "4", "--output", folder.resolve("o.rgb").toString(),
        missing.toString());
    assertEquals("1", image[0]);
    assertTrue(image[2].startsWith("clip-jvm preprocess: ") && image[2].contains(missing.toString()), image[2]);
    assertOneLine(image[2]);
    Path export = folder.resolve("no-export");
    String[] noExport = run("classify", "--export", export.toString(), "--variant", "float32", "a.png", "cat");
    assertEquals("1", noExport[0]);
    assertTrue(noExport[2].contains(export.toString()) && noExport[2].contains("does not exist"), noExport[2]);
    assertOneLine(noExport[2]);
    assertEquals("", noExport[1]);
  }

  @Test
  void successExitsZero() throws IOException {
    // A uniform image stays uniform through any resize and crop: every output pixel is its colour.
    BufferedImage image = new BufferedImage(6, 3, BufferedImage.TYPE_INT_RGB);
    for (int y = 0; y < 3; y++) {
      for (int x = 0; x < 6; x++) {
        image.setRGB(x, y, 0x0a64c8);
      }
    }
    Path png = folder.resolve("blue.png");
    ImageIO.write(image, "png", png.toFile());
    Path output = folder.resolve("out.rgb");
    String[] result = run("preprocess", "--resolution=2", "--output", output.toString(), "--", png.toString());
    assertEquals("0", result[0], result[2]);
    assertEquals("", result[2]);
    byte[] expected = new byte[2 * 2 * 3];
    for (int i = 0; i < expected.length; i += 3) {
      expected[i] = 0x0a;
      expected[i + 1] = 0x64;
      expected[i + 2] = (byte) 0xc8;
    }
    assertArrayEquals(expected, Files.readAllBytes(output));
  }

  @Test
  void optionsSplitFlagsFromPositionals() {
    Main.Options options = Main.Options.parse(List.of("a", "--x", "1", "--y=2=3", "b", "--", "--z", "c"));
    assertEquals(List.of("a", "b", "--z", "c"), options.positional());
    assertEquals("1", options.required("x"));
    assertEquals("2=3", options.optional("y", null)); // only the first "=" separates
    assertEquals("d", options.optional("w", "d"));
    options.rejectUnknown();
    Main.Options unread = Main.Options.parse(List.of("--x", "1", "--y", "2"));
    unread.required("x");
    assertEquals("unknown option --y", assertThrows(Main.UsageException.class, unread::rejectUnknown).getMessage());
  }
}
