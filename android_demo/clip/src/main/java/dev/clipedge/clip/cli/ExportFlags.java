package dev.clipedge.clip.cli;

import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.runtime.LiteRtJvmModel;
import dev.clipedge.clip.runtime.LiteRtJvmModel.Accelerator;
import dev.clipedge.clip.runtime.ModelLoader;
import java.nio.file.Path;
import java.util.List;
import java.util.Locale;

/**
 * The flags every model command shares: {@code --export DIR --variant V [--threads N] [--accelerator cpu|gpu|npu]}.
 * --threads defaults to the number of processors. The export's manifest.json is read as soon as the flags are
 * parsed; artifacts are checked when opened.
 */
final class ExportFlags {
  static final String USAGE = "--export DIR --variant V [--threads N] [--accelerator cpu|gpu|npu]";

  final Manifest manifest;
  final String variant;
  final ModelLoader loader;

  private ExportFlags(Manifest manifest, String variant, ModelLoader loader) {
    this.manifest = manifest;
    this.variant = variant;
    this.loader = loader;
  }

  /** Reads the shared flags and refuses any other (the model commands have no flags of their own). */
  static ExportFlags fromOptions(Main.Options options) {
    String export = options.required("export");
    String variant = options.required("variant");
    // Without CPU options LiteRT 2.3.0 runs one thread; by default we use every core the JVM may use.
    String threadsFlag = options.optional("threads", Integer.toString(Runtime.getRuntime().availableProcessors()));
    String acceleratorFlag = options.optional("accelerator", "cpu");
    options.rejectUnknown();
    int threads;
    try {
      threads = Integer.parseInt(threadsFlag);
    } catch (NumberFormatException e) {
      threads = -1;
    }
    if (threads < 0) {
      throw new Main.UsageException("--threads must be a whole number >= 0 (0: LiteRT's default, one thread), "
          + "got '" + threadsFlag + "'");
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
    ModelLoader loader = file -> LiteRtJvmModel.open(file, runtime);
    return new ExportFlags(Manifest.load(Path.of(export)), variant, loader);
  }

  /** The export folder, after checking every assets/ file (the tokenizer's vocabulary) against the manifest. */
  Path verifiedAssets() {
    for (Manifest.Artifact artifact : manifest.artifacts()) {
      if (artifact.path().startsWith("assets/")) {
        artifact.verified();
      }
    }
    return manifest.directory();
  }
}
