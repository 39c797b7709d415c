package dev.clipedge.clip.cli;

import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.runtime.LiteRtJvmModel;
import dev.clipedge.clip.runtime.LiteRtJvmModel.Accelerator;
import dev.clipedge.clip.runtime.ModelLoader;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;

/**
 * The flags every model command shares: {@code --export DIR --variant V [--threads N] [--accelerator cpu|gpu|npu]}.
 * --threads defaults to the number of processors (0: LiteRT's default, one thread; at most MAX_THREADS). The
 * export's manifest.json is read as soon as the flags are parsed; artifacts are checked when opened.
 */
final class ExportFlags {
  static final String USAGE = "--export DIR --variant V [--threads N] [--accelerator cpu|gpu|npu]";
  /**
   * LiteRT starts every thread asked for: --threads 1000000 exhausted the machine's threads and crashed in
   * native code. A fixed bound (not a multiple of this machine's cores) keeps a command line valid on every
   * machine, and is far above the cores any phone or desktop has.
   */
  static final int MAX_THREADS = 256;

  final Manifest manifest;
  final String variant;
  final ModelLoader loader;
  /** What {@link #loader} opens models with: the accelerators and CPU threads the flags asked for. */
  final LiteRtJvmModel.Options runtime;
  /** Hidden option for benchmarks: time the first item's encoding (see {@link #time}); 0 = off. */
  final int repeat;

  private ExportFlags(Manifest manifest, String variant, LiteRtJvmModel.Options runtime, int repeat) {
    this.manifest = manifest;
    this.variant = variant;
    this.runtime = runtime;
    this.loader = file -> LiteRtJvmModel.open(file, runtime);
    this.repeat = repeat;
  }

  /** Reads the shared flags and refuses any other (read a command's own flags before). */
  static ExportFlags fromOptions(Main.Options options) {
    return fromOptions(options, null);
  }

  /** As {@link #fromOptions(Main.Options)}, with --variant optional when {@code defaultVariant} is not null. */
  static ExportFlags fromOptions(Main.Options options, String defaultVariant) {
    String export = options.required("export");
    String variant = defaultVariant == null ? options.required("variant") : options.optional("variant", defaultVariant);
    // Without CPU options LiteRT 2.3.0 runs one thread; by default we use every core the JVM may use.
    String threadsFlag = options.optional("threads",
        Integer.toString(Math.min(Runtime.getRuntime().availableProcessors(), MAX_THREADS)));
    String acceleratorFlag = options.optional("accelerator", "cpu");
    String repeatFlag = options.optional("repeat", "0");
    options.rejectUnknown();
    int repeat = nonNegative("repeat", repeatFlag);
    int threads = nonNegative("threads", threadsFlag);
    if (threads > MAX_THREADS) {
      throw new Main.UsageException("--threads must be at most " + MAX_THREADS + ", got " + threads);
    }
    Accelerator accelerator;
    try {
      accelerator = Accelerator.valueOf(acceleratorFlag.toUpperCase(Locale.ROOT));
    } catch (IllegalArgumentException e) {
      throw new Main.UsageException("--accelerator must be cpu, gpu or npu, got '" + acceleratorFlag + "'");
    }
    // LiteRT runs on the CPU whatever it cannot place on the accelerator asked for. Its own logs go to stderr
    // only with CLIP_JVM_DEBUG, like stack traces (Main).
    LiteRtJvmModel.Options runtime = new LiteRtJvmModel.Options(
        accelerator == Accelerator.CPU ? List.of(Accelerator.CPU) : List.of(accelerator, Accelerator.CPU), threads,
        System.getenv("CLIP_JVM_DEBUG") != null);
    return new ExportFlags(Manifest.load(Path.of(export)), variant, runtime, repeat);
  }

  private static int nonNegative(String flag, String value) {
    try {
      int parsed = Integer.parseInt(value);
      if (parsed >= 0) {
        return parsed;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new Main.UsageException("--" + flag + " must be a whole number >= 0, got '" + value + "'");
  }

  /**
   * With --repeat N: runs {@code work} to warm up (N times and at least two seconds), then N times timed, and
   * prints "{@code what}_ms_median=X" to stderr. The commands time only the model work of one item: an encoder
   * alone (input copy, LiteRT run, output read and normalisation; "encode"), or a whole classification with the
   * label embeddings cached ("classify": resize and crop, image encoder, ranking).
   */
  void time(String what, Runnable work) {
    if (repeat == 0) {
      return;
    }
    long warmUpEnd = System.nanoTime() + 2_000_000_000L;
    for (int i = 0; i < repeat || System.nanoTime() < warmUpEnd; i++) {
      work.run();
    }
    double[] millis = new double[repeat];
    for (int i = 0; i < repeat; i++) {
      long start = System.nanoTime();
      work.run();
      millis[i] = (System.nanoTime() - start) / 1e6;
    }
    Arrays.sort(millis);
    double median = repeat % 2 == 1 ? millis[repeat / 2] : (millis[repeat / 2 - 1] + millis[repeat / 2]) / 2;
    System.err.printf(Locale.ROOT, "%s_ms_median=%.4f%n", what, median);
  }
}
