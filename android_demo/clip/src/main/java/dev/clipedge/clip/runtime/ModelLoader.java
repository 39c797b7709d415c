package dev.clipedge.clip.runtime;

import java.nio.file.Path;

/** Opens a verified .tflite file: {@code LiteRtJvmModel::open} on the desktop, LiteRT's CompiledModel on Android. */
@FunctionalInterface
public interface ModelLoader {
  TfliteModel open(Path file);
}
