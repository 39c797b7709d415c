package dev.clipedge.clip.cli;

import dev.clipedge.clip.ClipClassifier;
import dev.clipedge.clip.Json;
import dev.clipedge.clip.ZeroShot;
import dev.clipedge.clip.image.ImageFiles;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code classify IMAGE LABEL...}: the labels ranked for the image, one JSON object {"label", "probability"} per
 * line, most probable first, computed as the SavedModel's serving_default does ({@link ClipClassifier}).
 */
final class ClassifyCommand implements Main.Command {
  @Override
  public String usage() {
    return "classify " + ExportFlags.USAGE + " IMAGE LABEL...";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    ExportFlags export = ExportFlags.fromOptions(options);
    List<String> arguments = options.positional();
    if (arguments.size() < 2) {
      throw new Main.UsageException("needs an image and at least one label");
    }
    List<String> labels = arguments.subList(1, arguments.size());
    // A bad image fails before any model is opened.
    ImageFiles.Argb decoded = ImageFiles.read(Path.of(arguments.get(0)), export.manifest.contract().image());
    try (ClipClassifier classifier = ClipClassifier.open(export.manifest, export.variant, export.loader,
        labels.size())) {
      ClipClassifier.Result result = classifier.classify(decoded.pixels(), decoded.width(), decoded.height(), labels);
      export.time("classify", () -> classifier.classify(decoded.pixels(), decoded.width(), decoded.height(), labels));
      for (ZeroShot.LabelScore score : result.ranking()) {
        out.println("{\"label\": " + Json.quote(score.label()) + ", \"probability\": " + score.probability() + "}");
      }
    }
    return 0;
  }
}
