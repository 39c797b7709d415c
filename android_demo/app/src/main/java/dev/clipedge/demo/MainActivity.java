package dev.clipedge.demo;

import android.app.Activity;
import android.content.Intent;
import android.net.Uri;
import android.os.Bundle;
import android.os.Handler;
import android.os.Looper;
import android.text.InputType;
import android.widget.ArrayAdapter;
import android.widget.Button;
import android.widget.EditText;
import android.widget.ImageView;
import android.widget.LinearLayout;
import android.widget.ScrollView;
import android.widget.Spinner;
import android.widget.Switch;
import android.widget.TextView;
import com.google.ai.edge.litert.Accelerator;
import com.google.ai.edge.litert.Environment;
import dev.clipedge.clip.ClipClassifier;
import dev.clipedge.clip.Manifest;
import dev.clipedge.clip.ZeroShot;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

/**
 * The demo's only screen: pick a photo, type labels (one per line), choose the variant and CPU or GPU, and see
 * the labels ranked with probabilities and where the time went. Everything that computes lives in
 * android_demo/clip ({@link ClipClassifier}); this class only moves pixels and text between the screen and it.
 */
public final class MainActivity extends Activity {
  private static final int PICK_PHOTO = 1;
  private static final String DEFAULT_LABELS = "a photo of a cat\na photo of a dog\na photo of a car\n"
      + "a photo of food\na photo of a person";

  private final ExecutorService worker = Executors.newSingleThreadExecutor();
  private final Handler ui = new Handler(Looper.getMainLooper());
  // Touched only on the worker thread.
  private Manifest manifest;
  private Environment environment;
  private ClipClassifier classifier;
  private String classifierKey = "";

  private ImageView preview;
  private EditText labels;
  private Spinner variants;
  private Switch gpu;
  private Button classify;
  private TextView output;
  private Uri photo;

  @Override
  protected void onCreate(Bundle state) {
    super.onCreate(state);
    setContentView(layout());
    output.setText("loading the export ...");
    worker.execute(() -> {
      try {
        manifest = Manifest.load(ExportFiles.install(this));
        environment = Environment.create(this);
        List<String> available = manifest.variants("image");
        ui.post(() -> {
          variants.setAdapter(new ArrayAdapter<>(this, android.R.layout.simple_spinner_dropdown_item, available));
          output.setText("export " + manifest.name() + ": pick a photo");
        });
      } catch (Exception e) {
        show("cannot load the export: " + e.getMessage());
      }
    });
  }

  private ScrollView layout() {
    LinearLayout column = new LinearLayout(this);
    column.setOrientation(LinearLayout.VERTICAL);
    column.setPadding(32, 32, 32, 32);
    Button pick = new Button(this);
    pick.setText("Pick a photo");
    pick.setOnClickListener(v -> startActivityForResult(
        new Intent(Intent.ACTION_GET_CONTENT).setType("image/*"), PICK_PHOTO));
    preview = new ImageView(this);
    preview.setAdjustViewBounds(true);
    preview.setMaxHeight(900);
    labels = new EditText(this);
    labels.setInputType(InputType.TYPE_CLASS_TEXT | InputType.TYPE_TEXT_FLAG_MULTI_LINE);
    labels.setText(DEFAULT_LABELS);
    variants = new Spinner(this);
    gpu = new Switch(this);
    gpu.setText("GPU (float16 suits it best)");
    classify = new Button(this);
    classify.setText("Classify");
    classify.setOnClickListener(v -> classify());
    output = new TextView(this);
    output.setTextIsSelectable(true);
    Button search = new Button(this);
    search.setText("Search the gallery");
    search.setOnClickListener(v -> startActivity(new Intent(this, SearchActivity.class)));
    for (android.view.View view : new android.view.View[] {pick, preview, labels, variants, gpu, classify, output,
        search}) {
      column.addView(view);
    }
    ScrollView scroll = new ScrollView(this);
    scroll.addView(column);
    return scroll;
  }

  @Override
  protected void onActivityResult(int request, int result, Intent data) {
    super.onActivityResult(request, result, data);
    if (request == PICK_PHOTO && result == RESULT_OK && data != null && data.getData() != null) {
      photo = data.getData();
      preview.setImageURI(photo);
      output.setText("");
    }
  }

  private void classify() {
    Object variant = variants.getSelectedItem();
    if (photo == null || variant == null) {
      output.setText(photo == null ? "pick a photo first" : "the export is still loading");
      return;
    }
    List<String> texts = new ArrayList<>();
    for (String line : labels.getText().toString().split("\n")) {
      if (!line.trim().isEmpty()) {
        texts.add(line.trim());
      }
    }
    Accelerator accelerator = gpu.isChecked() ? Accelerator.GPU : Accelerator.CPU;
    Uri uri = photo;
    classify.setEnabled(false);
    output.setText("running ...");
    worker.execute(() -> {
      try {
        ClipClassifier model = classifier(variant.toString(), accelerator);
        Pixels.Decoded photo = Pixels.decode(getContentResolver(), uri, manifest.contract().image());
        ClipClassifier.Result result = model.classify(photo.argb(), photo.width(), photo.height(), texts);
        StringBuilder text = new StringBuilder();
        for (ZeroShot.LabelScore score : result.ranking()) {
          text.append(String.format(Locale.ROOT, "%6.2f%%  %s%n", 100 * score.probability(), score.label()));
        }
        text.append(String.format(Locale.ROOT, "%n%s on %s: resize %.1f ms, image %.1f ms, text %.1f ms (new labels)",
            variant, accelerator, result.preprocessMs(), result.imageMs(), result.textMs()));
        show(text.toString());
      } catch (Exception | OutOfMemoryError e) {
        show("failed: " + e.getMessage());
      }
    });
  }

  /** One classifier per (variant, accelerator), replaced when either changes. Worker thread only. */
  private ClipClassifier classifier(String variant, Accelerator accelerator) throws IOException {
    String key = variant + "/" + accelerator;
    if (!key.equals(classifierKey)) {
      if (classifier != null) {
        classifier.close();
        classifier = null;
      }
      classifier = ClipClassifier.open(manifest, variant, LiteRtAndroidModel.loader(manifest, accelerator,
          environment), 256);
      classifierKey = key;
    }
    return classifier;
  }

  private void show(String text) {
    ui.post(() -> {
      output.setText(text);
      classify.setEnabled(true);
    });
  }

  @Override
  protected void onDestroy() {
    worker.execute(() -> {
      if (classifier != null) {
        classifier.close();
      }
      if (environment != null) {
        environment.close();
      }
    });
    worker.shutdown();
    super.onDestroy();
  }
}
