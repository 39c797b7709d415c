package dev.clipedge.clip.cli;

import dev.clipedge.clip.ImageEncoder;
import dev.clipedge.clip.Json;
import dev.clipedge.clip.TextEncoder;
import dev.clipedge.clip.ZeroShot;
import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.image.ImagePreprocessor;
import dev.clipedge.clip.text.ClipTokenizer;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * {@code classify IMAGE LABEL...}: the labels ranked for the image, one JSON object {"label", "probability"} per
 * line, most probable first. As the SavedModel's serving_default: the label texts are encoded as given (no
 * prompt template), logits are the export's logit multiplier times the cosine similarities, probabilities their
 * softmax over the labels.
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
    double multiplier = export.manifest.logitMultiplier();
    List<String> labels = arguments.subList(1, arguments.size());
    ImageFiles.Argb decoded = ImageFiles.read(Path.of(arguments.get(0))); // a bad image fails before any model
    float[] image;
    try (ImageEncoder encoder = new ImageEncoder(export.manifest, export.variant, export.loader)) {
      image = encoder.encode(new ImagePreprocessor(encoder.resolution())
          .fromArgb(decoded.pixels(), decoded.width(), decoded.height()));
    }
    List<float[]> texts = new ArrayList<>();
    try (TextEncoder encoder = new TextEncoder(export.manifest, export.variant, export.loader)) {
      ClipTokenizer tokenizer = ClipTokenizer.fromExport(export.verifiedAssets(), encoder.contextLength());
      for (String label : labels) {
        texts.add(encoder.encode(tokenizer.tokenize(label).ids()));
      }
    }
    for (ZeroShot.LabelScore score : new ZeroShot(multiplier).rank(image, labels, texts, labels.size())) {
      out.println("{\"label\": " + Json.quote(score.label()) + ", \"probability\": " + score.probability() + "}");
    }
    return 0;
  }
}
