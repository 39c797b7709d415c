package dev.clipedge.clip.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.clipedge.clip.runtime.LiteRtFixture;
import dev.clipedge.clip.runtime.LiteRtJvmModel.Accelerator;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The model commands' shared flags as the runtime receives them: --threads and --accelerator become the LiteRT
 * options every model is opened with (LiteRtJvmModelTest checks on real models that those options take effect),
 * and the loader the commands open models with uses them (on a real export only, see LiteRtFixture).
 */
class ExportFlagsTest {
  @TempDir Path folder;
  private Path export;

  @BeforeEach
  void writeExport() throws IOException {
    // The smallest manifest Manifest.load accepts; the flags are parsed before any artifact is looked at.
    export = Files.createDirectories(folder.resolve("export"));
    Files.writeString(export.resolve("manifest.json"),
        "{\"name\": \"t\", \"config\": {\"context_length\": 5}, \"artifacts\": []}");
  }

  private ExportFlags parse(String... flags) {
    List<String> args = new ArrayList<>(List.of("--export", export.toString(), "--variant", "float32"));
    args.addAll(List.of(flags));
    return ExportFlags.fromOptions(Main.Options.parse(args));
  }

  private String refusal(String... flags) {
    return assertThrows(Main.UsageException.class, () -> parse(flags)).getMessage();
  }

  @Test
  void threadsReachTheRuntimeOptions() {
    assertEquals(3, parse("--threads", "3").runtime.cpuThreads());
    assertEquals(256, parse("--threads=256").runtime.cpuThreads());
    // 0 asks for LiteRT's own default (one thread): the JNI shim then adds no CPU options.
    assertEquals(0, parse("--threads", "0").runtime.cpuThreads());
    // Without the flag: every processor this JVM may use (LiteRT alone would use one), within the bound.
    int processors = Runtime.getRuntime().availableProcessors();
    assertEquals(Math.min(processors, ExportFlags.MAX_THREADS), parse().runtime.cpuThreads());
  }

  @Test
  void threadCountsOutsideTheRangeAreUsageErrors() {
    assertEquals("--threads must be at most 256, got 257", refusal("--threads", "257"));
    assertEquals("--threads must be a whole number >= 0, got '-1'", refusal("--threads", "-1"));
    assertEquals("--threads must be a whole number >= 0, got 'four'", refusal("--threads", "four"));
    assertEquals("--threads must be a whole number >= 0, got '2.5'", refusal("--threads", "2.5"));
    assertEquals("--threads must be a whole number >= 0, got ''", refusal("--threads="));
    // Past int: not wrapped round to a small or negative count.
    assertEquals("--threads must be a whole number >= 0, got '4294967297'", refusal("--threads", "4294967297"));
  }

  @Test
  void acceleratorsFallBackToTheCpu() {
    assertEquals(List.of(Accelerator.CPU), parse().runtime.accelerators());
    assertEquals(List.of(Accelerator.CPU), parse("--accelerator", "cpu").runtime.accelerators());
    // LiteRT runs on the CPU whatever the accelerator cannot take: the CPU is always the second choice.
    assertEquals(List.of(Accelerator.GPU, Accelerator.CPU), parse("--accelerator", "gpu").runtime.accelerators());
    assertEquals(List.of(Accelerator.NPU, Accelerator.CPU), parse("--accelerator", "NPU").runtime.accelerators());
    assertEquals("--accelerator must be cpu, gpu or npu, got 'tpu'", refusal("--accelerator", "tpu"));
    assertEquals("--accelerator must be cpu, gpu or npu, got ''", refusal("--accelerator="));
    // LiteRT's informational logs stay off stderr unless CLIP_JVM_DEBUG is set.
    assertEquals(System.getenv("CLIP_JVM_DEBUG") != null, parse().runtime.runtimeLogs());
  }

  @Test
  void theLoaderOpensModelsWithTheFlagsThreads() throws IOException {
    // XNNPACK's pool runs N - 1 threads of its own beside the caller: counted on the export's image encoder, so a
    // loader that dropped the flags (LiteRT alone runs one thread) would start none.
    assertEquals(3, LiteRtFixture.threadsStarted(parse("--threads", "4").loader));
    assertEquals(0, LiteRtFixture.threadsStarted(parse("--threads", "1").loader));
    int processors = Math.min(Runtime.getRuntime().availableProcessors(), ExportFlags.MAX_THREADS);
    assertEquals(processors - 1, LiteRtFixture.threadsStarted(parse().loader));
  }

  @Test
  void otherFlagsAreRefused() {
    // The model commands have no flags of their own: a --top_k (classify prints every label) or a misspelt
    // flag must not be ignored silently.
    assertEquals("unknown option --top_k", refusal("--top_k", "3"));
    assertEquals("unknown option --thread", refusal("--thread", "3"));
    assertEquals("--repeat must be a whole number >= 0, got 'x'", refusal("--repeat", "x"));
    assertEquals(5, parse("--repeat", "5").repeat);
    assertEquals(0, parse().repeat);
    assertEquals("--export is required", assertThrows(Main.UsageException.class,
        () -> ExportFlags.fromOptions(Main.Options.parse(List.of("--variant", "float32")))).getMessage());
    assertEquals("--variant is required", assertThrows(Main.UsageException.class,
        () -> ExportFlags.fromOptions(Main.Options.parse(List.of("--export", "x")))).getMessage());
  }

  @Test
  void theManifestIsReadWithTheFlags() {
    ExportFlags flags = parse();
    assertEquals("t", flags.manifest.name());
    assertEquals("float32", flags.variant);
    assertFalse(flags.runtime.accelerators().isEmpty());
  }
}
