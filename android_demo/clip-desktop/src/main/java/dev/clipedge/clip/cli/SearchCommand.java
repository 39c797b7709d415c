package dev.clipedge.clip.cli;

import dev.clipedge.clip.Json;
import dev.clipedge.clip.image.ImageFiles;
import dev.clipedge.clip.index.IndexFile;
import dev.clipedge.clip.index.IndexSearcher;
import dev.clipedge.clip.index.PhotoSearch;
import java.io.InputStream;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.List;

/**
 * {@code search --export DIR --index FILE [--top_k K] ("QUERY" | --image FILE)}: the K best photos for a text or
 * an example image, one JSON object {"id", "score"} per line, best first, equal scores by id (as unsigned
 * UTF-8 bytes). The score is the float32 of docs/device_index.md, written with the fewest digits that read back
 * as it. --variant defaults to the index's; any other is refused by the fingerprint check.
 */
final class SearchCommand implements Main.Command {
  /** An exact search sorts its candidates: a bound keeps the output and the sort small. */
  static final int MAX_TOP_K = 10_000;

  @Override
  public String usage() {
    return "search --export DIR --index FILE [--top_k K] [--variant V] [--threads N] [--accelerator cpu|gpu|npu] "
        + "(\"QUERY\" | --image FILE)";
  }

  @Override
  public int run(Main.Options options, InputStream in, PrintStream out) throws Exception {
    Path indexFile = Path.of(options.required("index"));
    String topK = options.optional("top_k", "10");
    String image = options.optional("image", null);
    int k = topK(topK);
    List<String> texts = options.positional();
    if (!(image == null ? texts.size() == 1 : texts.isEmpty())) {
      throw new Main.UsageException("give either one query text or --image FILE");
    }
    IndexFile index = IndexFile.load(indexFile);
    ExportFlags export = ExportFlags.fromOptions(options, index.fingerprint().variant());
    // Before any model is opened; the export's limits decide which sizes are refused.
    ImageFiles.Argb decoded = image == null ? null
        : ImageFiles.read(Path.of(image), export.manifest.contract().image());
    try (PhotoSearch search = PhotoSearch.open(export.manifest, export.variant, export.loader, index)) {
      List<IndexSearcher.Hit> hits = decoded == null ? search.searchText(texts.get(0), k)
          : search.searchImage(decoded.pixels(), decoded.width(), decoded.height(), k);
      for (IndexSearcher.Hit hit : hits) {
        out.println("{\"id\": " + Json.quote(hit.id()) + ", \"score\": " + hit.score() + "}");
      }
    }
    return 0;
  }

  private static int topK(String value) {
    try {
      int k = Integer.parseInt(value);
      if (k >= 1 && k <= MAX_TOP_K) {
        return k;
      }
    } catch (NumberFormatException e) {
      // reported below
    }
    throw new Main.UsageException("--top_k must be a whole number from 1 to " + MAX_TOP_K + ", got '" + value + "'");
  }
}
