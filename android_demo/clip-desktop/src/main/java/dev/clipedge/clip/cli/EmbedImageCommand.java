package dev.clipedge.clip.cli;

import dev.clipedge.clip.ImageEncoder;
import dev.clipedge.clip.image.ImagePreprocessor;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/** {@code embed-image FILE...}: one JSON array (the unit-norm embedding) per file, one per line, in order. */
final class EmbedImageCommand implements Main.Command {
  @Override
  public String usage() {
    return "embed-image " + ExportFlags.USAGE + " FILE...";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    ExportFlags export = ExportFlags.fromOptions(options);
    if (options.positional().isEmpty()) {
      throw new Main.UsageException("no image file given");
    }
    try (ImageEncoder encoder = new ImageEncoder(export.manifest, export.variant, export.loader)) {
      ImagePreprocessor preprocessor = encoder.preprocessor();
      List<String> files = options.positional();
      for (int i = 0; i < files.size(); i++) {
        byte[] rgb = ImageInput.rgb(Path.of(files.get(i)), preprocessor);
        out.println(JsonLines.array(encoder.encode(rgb)));
        if (i == 0) {
          export.time("encode", () -> encoder.encode(rgb));
        }
      }
    }
    return 0;
  }
}
