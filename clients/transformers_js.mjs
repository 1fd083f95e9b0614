// Translate with transformers.js from local files only: node transformers_js.mjs ARTIFACT_DIR DTYPE < sentences.txt
// Prints one JSON line a sentence: {"ids": [...], "text": "..."} (greedy, one sentence a call, as the tests compare).
import path from "node:path";
import fs from "node:fs";
import { env, AutoTokenizer, AutoModelForSeq2SeqLM } from "@huggingface/transformers";

const [directory, dtype, maxNewTokens = "64"] = process.argv.slice(2);
env.allowRemoteModels = false;
env.allowLocalModels = true;
env.localModelPath = path.dirname(path.resolve(directory)) + "/";
const name = path.basename(path.resolve(directory));
const tokenizer = await AutoTokenizer.from_pretrained(name);
const model = await AutoModelForSeq2SeqLM.from_pretrained(name, { dtype, device: "cpu" });
const sentences = fs.readFileSync(0, "utf8").split("\n").filter((line) => line.length > 0);
for (const sentence of sentences) {
  const inputs = await tokenizer(sentence);
  const output = await model.generate({ ...inputs, max_new_tokens: Number(maxNewTokens), do_sample: false, num_beams: 1 });
  const ids = Array.from(output.tolist()[0], Number);
  const text = tokenizer.decode(ids, { skip_special_tokens: true });
  process.stdout.write(JSON.stringify({ ids, source_ids: Array.from(inputs.input_ids.tolist()[0], Number), text }) + "\n");
}
