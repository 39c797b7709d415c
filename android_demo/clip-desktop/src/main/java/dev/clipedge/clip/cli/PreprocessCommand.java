package dev.clipedge.clip.cli;

import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.image.ImagePreprocessor;
import java.io.IOException;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;

/**
 * {@code clip-jvm preprocess --resolution R --output OUT.rgb FILE}: writes the R*R*3 bytes (RGB, row-major HWC)
 * that the TFLite image encoders take, for checking and debugging preprocessing against the Python side.
 *
 * <p>Hidden option for benchmarks: {@code --repeat N} runs the resize and crop (not the decoding) to warm up (N
 * times and at least two seconds), then N times timed, and prints "preprocess_ms_median=X" to stderr.
 */
public final class PreprocessCommand implements Main.Command {
  @Override
  public String usage() {
    return "preprocess --resolution R --output OUT.rgb FILE";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws IOException {
    String resolutionText = options.required("resolution");
    Path output = Path.of(options.required("output"));
    int repeat = parsePositive("repeat", options.optional("repeat", "0"), true);
    options.rejectUnknown();
    List<String> files = options.positional();
    if (files.size() != 1) {
      throw new Main.UsageException("expected one image file, got " + files.size());
    }
    ImagePreprocessor preprocessor;
    try {
      preprocessor = new ImagePreprocessor(parsePositive("resolution", resolutionText, false));
    } catch (IllegalArgumentException e) {
      throw new Main.UsageException(e.getMessage());
    }
    ImageFiles.Argb image = ImageFiles.read(Path.of(files.get(0)), preprocessor.limits());
    byte[] pixels = preprocessor.fromArgb(image.pixels(), image.width(), image.height());
    if (repeat > 0) {
      System.err.printf("preprocess_ms_median=%.4f%n", medianMillis(preprocessor, image, repeat));
    }
    Files.write(output, pixels);
    return 0;
  }

  private static double medianMillis(ImagePreprocessor preprocessor, ImageFiles.Argb image, int repeat) {
    // Warm-up until the JIT has compiled the loops: at least `repeat` calls and two seconds.
    long warmUpEnd = System.nanoTime() + 2_000_000_000L;
    for (int i = 0; i < repeat || System.nanoTime() < warmUpEnd; i++) {
      preprocessor.fromArgb(image.pixels(), image.width(), image.height());
    }
    double[] millis = new double[repeat];
    for (int i = 0; i < repeat; i++) {
      long start = System.nanoTime();
      preprocessor.fromArgb(image.pixels(), image.width(), image.height());
      millis[i] = (System.nanoTime() - start) / 1e6;
    }
    Arrays.sort(millis);
    return repeat % 2 == 1 ? millis[repeat / 2] : (millis[repeat / 2 - 1] + millis[repeat / 2]) / 2;
  }

  private static int parsePositive(String name, String text, boolean zeroAllowed) {
    try {
      int value = Integer.parseInt(text);
      if (value > 0 || (zeroAllowed && value == 0)) {
        return value;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new Main.UsageException("--" + name + " must be a positive integer, got '" + text + "'");
  }
}
